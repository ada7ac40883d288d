"""Platforms: what runs guests on a node and how to dump and restore them."""

"""Nodes: a transport plus a platform plus a snapshotter."""

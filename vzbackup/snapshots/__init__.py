"""Snapshotters: how a consistent read-only view of a guest is made before a dump."""

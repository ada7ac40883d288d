"""The demo lab: realistic guests on three directory nodes (used by 'make demo' and bench/)."""

"""Capability names a backend may declare in ``Backend.capabilities``."""

RANGED_GET = "ranged_get"  # get(offset, length) transfers only the range
ATOMIC_PUT = "atomic_put"  # readers never see a partial object
DURABLE_FLUSH = "durable_flush"  # after flush() every object put so far survives a crash

RETENTION = "retention"  # Object Lock: retention_until(key), extend_retention(key, until), lock_days

"""One module per verb. Operations see adapters only through ``vzbackup.ports``."""

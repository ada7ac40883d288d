"""``vzbackup daemon``: the jobs of the config on APScheduler, one daemon of several
elected on a PostgreSQL catalogue, stopped cleanly by SIGTERM, watched by systemd."""

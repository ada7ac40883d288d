"""vzbackup: backup and disaster recovery for Proxmox VE and OpenVZ guests."""

__version__ = "0.1.0"

"""Emulators of the Proxmox VE command-line tools (pvesh, vzdump, pct, qm, qmrestore),
faithful to ../../shared/reference/pve.md, over a state directory named by $PVE_FAKE_ROOT.

The state directory is one node's ``/``: ``etc/hostname`` names the node, ``etc/pve`` is the
cluster file system (a symlink to a folder shared by every node of the fake cluster), and
``var/lib/vz``, ``var/log``, ``var/run`` are the node's own. Guest volumes live under
``var/lib/fakepve/volumes/<storage>/<volume>``: a directory for a container's rootfs, a raw
file for a VM disk. Run state (running/stopped) is in ``etc/pve/.fake/status.json`` so every
node sees it, as pvestatd broadcasts make it in a real cluster. Stdlib only: the scripts run
under the system python3 on SSH test nodes too.
"""

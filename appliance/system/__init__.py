"""Integration with the host system (systemd)."""

"""Software twins of the boards: they speak the exact wire protocol over a pty (STYLE.md rule 5)."""

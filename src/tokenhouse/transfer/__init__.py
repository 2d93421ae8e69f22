"""Import and export of the whole store (JSON Lines), for backups and migrations."""

"""API tokens: the credentials accounts issue, and their lifecycle."""

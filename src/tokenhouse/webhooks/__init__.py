"""Audit webhooks (issue 13): the audit trail pushed to other systems, signed, at least
once."""

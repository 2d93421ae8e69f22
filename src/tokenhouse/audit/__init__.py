"""The audit trail: the platform's Audit API (records and event types), and the records the
service writes about its own changes (issue 13)."""

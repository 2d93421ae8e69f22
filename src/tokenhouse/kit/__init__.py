"""Shared plumbing: settings, database, problems, ids, crypto, time, paging."""

"""Leak reports: secrets found where they should not be, made useless on report."""

"""Accounts (Client, Vendor, Operations): the tenants that own API tokens."""

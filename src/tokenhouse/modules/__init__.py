"""The module catalog: platform features a token may be allowed to use."""

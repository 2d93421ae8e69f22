"""Authentication: the Bearer secret becomes an actor, once per request."""

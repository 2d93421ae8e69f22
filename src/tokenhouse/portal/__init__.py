"""The API tokens page: static HTML, CSS and JavaScript served at /portal/, built only on the
public API (so it can never do what the API would refuse)."""

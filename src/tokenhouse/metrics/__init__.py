"""`GET /metrics`: the service's Prometheus metrics, outside /public/v1 and unauthenticated
(like the probes: see the README's "Metrics" section)."""

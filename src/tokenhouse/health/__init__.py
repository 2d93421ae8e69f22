"""Liveness and readiness probes, outside /public/v1 and unauthenticated."""

"""tokenhouse: a self-hosted implementation of the Marketplace Platform's API tokens service."""

__version__ = "0.1.0"

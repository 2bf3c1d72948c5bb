"""PIE: a multi-tenant model registry and durable job engine."""

__version__ = "0.1.0"

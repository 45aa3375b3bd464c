"""The HTTP edge: ingestion API, auth, limits, app factory, CLI, settings."""

from gateway._tables import metadata

__all__ = ["metadata"]

"""997 functional acknowledgements (placeholder until the 997 work lands)."""

from __future__ import annotations

__all__ = ["build_997"]


def build_997(data: bytes, *, file: str) -> list[str]:
    """Return no acknowledgements yet."""
    return []

"""Placeholder (core, issue 2)."""

__all__: list[str] = []

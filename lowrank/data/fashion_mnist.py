"""Placeholder: filled in by the image-data work (issue 5)."""

__all__: list[str] = []

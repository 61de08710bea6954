"""Adversarial evaluation (placeholder, issue 5)."""

__all__: list[str] = []

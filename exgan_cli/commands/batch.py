"""`exgan batch` (not built yet)."""

from __future__ import annotations

from .common import guarded, not_built


@guarded
def batch() -> None:
    """Not built yet: says so and exits with code 8."""
    not_built("batch")

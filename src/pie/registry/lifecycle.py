"""Version status rules (API.md §3) as a table the service consults."""

from __future__ import annotations

from typing import Final

ALLOWED: Final[dict[str, frozenset[str]]] = {
    "pending": frozenset({"training", "active", "failed"}),
    "training": frozenset({"active", "failed"}),
    "failed": frozenset({"pending", "training"}),
    "active": frozenset(),  # final: a new behaviour is a new version
}


def can_move(current: str, target: str) -> bool:
    return target in ALLOWED[current]

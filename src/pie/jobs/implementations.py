"""The registry of in-process implementations: built-ins plus the ``pie.handlers`` group.

Loaded once per process (entry points are read at start-up, never per request) and
passed down; a model's ``in_process`` handler must name one of these.
"""

from __future__ import annotations

import importlib.metadata
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from pie.jobs.builtin import BUILTINS, NON_BLOCKING

ENTRY_POINT_GROUP = "pie.handlers"
log = structlog.get_logger("pie.handlers")

Implementation = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True, slots=True)
class Registered:
    name: str
    source: str  # "builtin" | "entry_point" | "configured"
    target: Implementation
    non_blocking: bool = False
    """A synchronous built-in that returns at once: called on the loop, not in a thread."""

    @property
    def description(self) -> str:
        doc = inspect.getdoc(self.target) or ""
        return doc.splitlines()[0] if doc else ""

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.target)


class Implementations(Mapping[str, Registered]):
    """Name → implementation. Entry points may not shadow a built-in."""

    def __init__(self, items: Mapping[str, Registered]) -> None:
        self._items = dict(sorted(items.items()))

    @classmethod
    def load(cls, extra: Mapping[str, Implementation] | None = None) -> Implementations:
        items = {
            name: Registered(name, "builtin", fn, non_blocking=name in NON_BLOCKING)
            for name, fn in BUILTINS.items()
        }
        for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if entry.name in items:
                log.warning("handler_shadowing_refused", name=entry.name)
                continue
            try:
                target = entry.load()
            except Exception as error:  # a broken plugin must not stop PIE from starting
                log.error("handler_load_failed", name=entry.name, error=str(error))
                continue
            if callable(target):
                items[entry.name] = Registered(entry.name, "entry_point", target)
        for name, fn in (extra or {}).items():
            items[name] = Registered(name, "configured", fn)
        return cls(items)

    def __getitem__(self, name: str) -> Registered:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

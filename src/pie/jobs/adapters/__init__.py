"""Handler adapters: one small interface, no database access (DESIGN.md §3.8)."""

from __future__ import annotations

from typing import Any

from pie.jobs.adapters.aws import AwsClients
from pie.jobs.adapters.aws_lambda import LambdaAdapter
from pie.jobs.adapters.base import Adapter
from pie.jobs.adapters.ecs import EcsAdapter
from pie.jobs.adapters.in_process import InProcessAdapter
from pie.jobs.implementations import Implementations
from pie.settings import Settings


class Adapters:
    """The adapter for each handler type, built once per process."""

    def __init__(self, settings: Settings, implementations: Implementations) -> None:
        self.aws = AwsClients(settings)
        self.in_process = InProcessAdapter(implementations, threads=settings.in_process_threads)
        self._by_type: dict[str, Adapter] = {
            "in_process": self.in_process,
            "lambda": LambdaAdapter(self.aws),
            "ecs_task": EcsAdapter(self.aws, settings),
        }

    def for_handler(self, handler: dict[str, Any]) -> Adapter:
        return self._by_type[str(handler["type"])]

    def close(self) -> None:
        self.in_process.close()

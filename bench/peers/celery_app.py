"""The Celery peer: one no-op task, Redis as broker and result backend (Celery's own venv).

``celery -A celery_app worker`` runs it with Celery's defaults (prefork, one process per
CPU). The Redis URL, with a database number of the bench's own, comes from
CELERY_REDIS_URL. The result backend is what records each task's completion
(``date_done``), as PIE's jobs table records ``completed_at``; the task returns the time
it started, so the drain's first claim is read from the results too.
"""

from __future__ import annotations

import os
import time

from celery import Celery

app = Celery("bench", broker=os.environ["CELERY_REDIS_URL"], backend=os.environ["CELERY_REDIS_URL"])


@app.task(name="noop")
def noop() -> float:
    """Does nothing but say when it ran (its wall clock, for the drain's first claim)."""
    return time.time()

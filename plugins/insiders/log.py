"""Plain, scannable log lines: the same in Airflow task logs and in the CLI."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger("insiders")


def info(message: str, *args: object) -> None:
    logger.info(message, *args, stacklevel=2)


@contextmanager
def timed(stage: str, timings: dict[str, float] | None = None) -> Iterator[None]:
    """Log how long a stage took and record it in `timings` (seconds)."""
    start = time.perf_counter()
    yield
    seconds = time.perf_counter() - start
    if timings is not None:
        timings[stage] = round(seconds, 3)
    logger.info("%s done in %.2f s", stage, seconds)

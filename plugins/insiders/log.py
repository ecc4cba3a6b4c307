"""Plain, scannable log lines: the same in Airflow task logs and in the CLI."""

from __future__ import annotations

import logging

logger = logging.getLogger("insiders")


def info(message: str, *args: object) -> None:
    logger.info(message, *args, stacklevel=2)

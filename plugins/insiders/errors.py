"""Errors users can act on. Their message is one plain line: what, where, what to do."""

from __future__ import annotations


class InsidersError(Exception):
    """Base of the errors the CLI and the DAG report without a traceback."""


class InputError(InsidersError):
    """The input cannot be read as transactions (names the file, row and column when known)."""


class StoreError(InsidersError):
    """A store (documents or SQL) refused or failed; the run stays invisible to readers."""


class RunLockedError(InsidersError):
    """Another run for the same month is writing right now."""

"""Sources: where the transactions come from, as adapters behind one small protocol.

The core (quality, features, segmentation, value, evaluation, forecast, report,
stores) works on canonical invoice lines and never asks which source it has. A
source adapter (`Source`) says how to read its input into those lines, with an
account of every set-aside row per reason, and may add what its data knows
beyond transactions: extra customer features and which features the
segmentation models, persona names, amendments to the answers, extra SQL tables
and dashboards.

Adding a source is one module with a `Source` subclass plus one line in
`SOURCES` (docs/architecture.md shows how).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .base import Source
from .olist import Olist
from .online_retail import OnlineRetail

__all__ = ["DEFAULT", "SOURCES", "Source", "get_source", "naming_the_right_source"]

SOURCES: dict[str, type[Source]] = {
    OnlineRetail.kind: OnlineRetail,
    Olist.kind: Olist,
}
DEFAULT = OnlineRetail.kind


def get_source(kind: str | None) -> Source:
    """The adapter registered for `kind` (INSIDERS_SOURCE_KIND, `insiders run --source`);
    None: the default, the Online Retail layout of invoice lines."""
    try:
        return SOURCES[kind or DEFAULT]()
    except KeyError:
        from ..errors import InputError

        raise InputError(f"unknown source kind {kind!r}: choose one of "
                         f"{', '.join(sorted(SOURCES))}") from None


@contextmanager
def naming_the_right_source(location: str, kind: str) -> Iterator[None]:
    """An input refused by the `kind` source that another source recognises (the Olist
    folder without `--source olist`): the refusal says which source to choose."""
    from ..errors import InputError

    try:
        yield
    except InputError as exc:
        others = [k for k, source in SOURCES.items() if k != kind
                  and source.recognises(str(location))]
        if not others:
            raise
        text = str(exc).rstrip()
        raise InputError(f"{text}{' ' if text.endswith('.') else '. '}It looks like the "
                         f"{others[0]} input: choose it with --source {others[0]} "
                         f"(INSIDERS_SOURCE_KIND={others[0]} for the DAG).") from None

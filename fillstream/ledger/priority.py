"""Which REST calls go first when the shared weight budget is tight.

The priority travels with the calling task (a context variable), so the paths mark a whole job
(``with rest_priority(RestPriority.URGENT): await backfill(...)``) without threading an argument
through every call; tasks started inside inherit it. The venue wrapper reads it per request.
"""

from __future__ import annotations

import contextvars
import enum
from collections.abc import Iterator
from contextlib import contextmanager


class RestPriority(enum.IntEnum):
    """Lower goes first."""

    URGENT = 0  # listenKey operations and gap backfills: the stream is waiting on them
    NORMAL = 1  # start-up reconcile, order and position sync, repair
    BACKGROUND = 2  # periodic polls: they take what is left


_PRIORITY: contextvars.ContextVar[RestPriority] = contextvars.ContextVar(
    "fillstream_rest_priority", default=RestPriority.NORMAL
)


@contextmanager
def rest_priority(priority: RestPriority) -> Iterator[None]:
    """Run the block's REST calls (and tasks it starts) at ``priority``."""
    token = _PRIORITY.set(priority)
    try:
        yield
    finally:
        _PRIORITY.reset(token)


def current_rest_priority() -> RestPriority:
    return _PRIORITY.get()

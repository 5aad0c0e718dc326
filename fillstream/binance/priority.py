"""Which REST calls go first when the shared weight budget is tight.

One IP's budget (fapi: 2,400 weight a minute) is shared by every account of the process. The
order is the order of start-up, and it holds whenever the budget is short:

1. ``STREAM``: what a socket waits on: listenKey create/keepalive/delete and the clock and limit
   reads a venue needs before its first signed call (weight 1 each);
2. ``GAP``: gap backfills (the window a socket may have missed) and the staleness watchdog;
3. ``HISTORY``: deeper history and symbol discovery: the start-up reconcile, manual runs, repair,
   order and position sync;
4. ``PERIODIC``: periodic polls; they take what is left.

The priority travels with the calling task (a context variable), so the paths mark a whole job
(``with rest_priority(RestPriority.GAP): await backfill(...)``) without threading an argument
through every call; tasks started inside inherit it. The venue wrapper reads it per request.
"""

from __future__ import annotations

import contextvars
import enum
from collections.abc import Iterator
from contextlib import contextmanager


class RestPriority(enum.IntEnum):
    """Lower goes first."""

    STREAM = 0
    GAP = 1
    HISTORY = 2
    PERIODIC = 3
    # Earlier names (aliases of the levels above).
    URGENT = 1
    NORMAL = 2
    BACKGROUND = 3


_PRIORITY: contextvars.ContextVar[RestPriority] = contextvars.ContextVar(
    "fillstream_rest_priority", default=RestPriority.HISTORY
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

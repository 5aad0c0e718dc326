"""Everything Binance: endpoints and URL forms per environment, the signed REST client and the
shared weight budget, error codes and the retry policy as data, and one folder per product
(``usdm/`` now; ``coinm/`` and ``spot/`` have room beside it) with its wire events, REST rows and
the one ``parse`` module both paths use.

Imports only :mod:`fillstream.ledger` and third-party libraries (import-linter enforces it); the
paths (``stream``, ``reconcile``) import it, ``storage`` does not.
"""

from fillstream.binance.errors import VenueError
from fillstream.binance.priority import RestPriority, current_rest_priority, rest_priority
from fillstream.binance.venue import Json, Venue

__all__ = [
    "Json",
    "RestPriority",
    "Venue",
    "VenueError",
    "current_rest_priority",
    "rest_priority",
]

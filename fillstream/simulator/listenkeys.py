"""listenKeys: one active key per account and product, 60 minutes of (sim-clock) validity.

``/fapi/v1/listenKey`` and ``/dapi/v1/listenKey`` keep separate keys (two streams): a USDⓈ-M key
carries the account's USDⓈ-M events, a COIN-M key its COIN-M events.

``POST`` returns the account's active key (extending it) or creates a new one; ``PUT`` extends the
active key or fails with ``-1125``; ``DELETE`` removes it. Expiry is noticed by :meth:`expired`,
which the server's timer calls; the hub then pushes ``listenKeyExpired`` on sockets bound to it.
"""

from __future__ import annotations

import secrets
import string

from fillstream.simulator.clock import SimClock

VALIDITY_S = 3600.0
_ALPHABET = string.ascii_letters + string.digits


class ListenKeys:
    """The listenKey registry of every account."""

    def __init__(self, clock: SimClock) -> None:
        self._clock = clock
        # (account, product) -> (key, expires at sim s)
        self._by_account: dict[tuple[str, str], tuple[str, float]] = {}
        self._owner: dict[str, tuple[str, str]] = {}  # every key ever issued -> (account, product)

    def create(self, account: str, product: str = "usdm") -> str:
        """``POST``: the active key, extended, or a fresh one."""
        now = self._clock.sim_s()
        slot = (account, product)
        current = self._by_account.get(slot)
        if current is not None and current[1] > now:
            key = current[0]
        else:
            key = "".join(secrets.choice(_ALPHABET) for _ in range(64))
            self._owner[key] = slot
        self._by_account[slot] = (key, now + VALIDITY_S)
        return key

    def keepalive(self, account: str, product: str = "usdm") -> str | None:
        """``PUT``: extend the active key; None when there is none (``-1125``)."""
        key = self.active(account, product)
        if key is None:
            return None
        self._by_account[(account, product)] = (key, self._clock.sim_s() + VALIDITY_S)
        return key

    def delete(self, account: str, product: str = "usdm") -> str | None:
        """``DELETE``: forget the active key; returns it (None if there was none)."""
        current = self._by_account.pop((account, product), None)
        if current is None or current[1] <= self._clock.sim_s():
            return None
        return current[0]

    def active(self, account: str, product: str = "usdm") -> str | None:
        current = self._by_account.get((account, product))
        if current is None or current[1] <= self._clock.sim_s():
            return None
        return current[0]

    def owner(self, key: str) -> str | None:
        """The account a key was issued to (valid or not)."""
        slot = self._owner.get(key)
        return slot[0] if slot is not None else None

    def product(self, key: str) -> str:
        """The product whose stream a key carries (``usdm`` for keys never issued)."""
        slot = self._owner.get(key)
        return slot[1] if slot is not None else "usdm"

    def is_valid(self, key: str) -> bool:
        slot = self._owner.get(key)
        return slot is not None and self.active(*slot) == key

    def expire_now(self, account: str) -> list[str]:
        """The ``expire_listen_key`` fault: the account's active keys (both products) die now."""
        keys: list[str] = []
        for product in ("usdm", "coinm"):
            key = self.active(account, product)
            self._by_account.pop((account, product), None)
            if key is not None:
                keys.append(key)
        return keys

    def expired(self) -> list[str]:
        """Keys whose validity ran out since the last call (each reported once)."""
        now = self._clock.sim_s()
        gone: list[str] = []
        for slot, (key, expires) in list(self._by_account.items()):
            if expires <= now:
                gone.append(key)
                del self._by_account[slot]
        return gone

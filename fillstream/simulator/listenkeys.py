"""listenKeys: one active key per account, 60 minutes of (sim-clock) validity.

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
        self._by_account: dict[str, tuple[str, float]] = {}  # account -> (key, expires at sim s)
        self._owner: dict[str, str] = {}  # every key ever issued -> account

    def create(self, account: str) -> str:
        """``POST``: the active key, extended, or a fresh one."""
        now = self._clock.sim_s()
        current = self._by_account.get(account)
        if current is not None and current[1] > now:
            key = current[0]
        else:
            key = "".join(secrets.choice(_ALPHABET) for _ in range(64))
            self._owner[key] = account
        self._by_account[account] = (key, now + VALIDITY_S)
        return key

    def keepalive(self, account: str) -> str | None:
        """``PUT``: extend the active key; None when there is none (``-1125``)."""
        key = self.active(account)
        if key is None:
            return None
        self._by_account[account] = (key, self._clock.sim_s() + VALIDITY_S)
        return key

    def delete(self, account: str) -> str | None:
        """``DELETE``: forget the active key; returns it (None if there was none)."""
        current = self._by_account.pop(account, None)
        if current is None or current[1] <= self._clock.sim_s():
            return None
        return current[0]

    def active(self, account: str) -> str | None:
        current = self._by_account.get(account)
        if current is None or current[1] <= self._clock.sim_s():
            return None
        return current[0]

    def owner(self, key: str) -> str | None:
        """The account a key was issued to (valid or not)."""
        return self._owner.get(key)

    def is_valid(self, key: str) -> bool:
        account = self._owner.get(key)
        return account is not None and self.active(account) == key

    def expire_now(self, account: str) -> str | None:
        """The ``expire_listen_key`` fault: the active key dies now; returns it."""
        key = self.active(account)
        self._by_account.pop(account, None)
        return key

    def expired(self) -> list[str]:
        """Keys whose validity ran out since the last call (each reported once)."""
        now = self._clock.sim_s()
        gone: list[str] = []
        for account, (key, expires) in list(self._by_account.items()):
            if expires <= now:
                gone.append(key)
                del self._by_account[account]
        return gone

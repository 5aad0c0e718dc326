"""Applying, listing and clearing faults (the kinds are described in :mod:`.faults`)."""

from __future__ import annotations

from fillstream.simulator.clock import SimClock
from fillstream.simulator.config import FaultSpec
from fillstream.simulator.faults import MAY_BE_GLOBAL, SPOT_KINDS, RestError, validate
from fillstream.simulator.hub import Hub
from fillstream.simulator.listenkeys import ListenKeys
from fillstream.simulator.spot_book import SpotBook
from fillstream.simulator.spot_wsapi import WsApi
from fillstream.simulator.state import AccountState


class FaultControl:
    """Where every fault lands: the hub (stream faults, sockets), listenKeys, REST, the clock."""

    def __init__(
        self,
        *,
        hub: Hub,
        keys: ListenKeys,
        states: dict[str, AccountState],
        clock: SimClock,
    ) -> None:
        self._hub = hub
        self._keys = keys
        self._states = states
        self._clock = clock
        self.rest_errors: list[RestError] = []  # consumed by the REST dispatcher
        self._refuse_until: dict[str | None, float] = {}  # account (None: all) -> monotonic
        self.spot_books: dict[str, SpotBook] = {}  # set by the server with the WS API
        self.ws_api: WsApi | None = None

    def inject(
        self, account: str | None, kind: str, params: dict[str, object]
    ) -> dict[str, object]:
        """Validate and apply one fault; returns a short description of what it did.

        ``account`` may be None only for ``rest_error``, ``refuse_ws`` and ``clock_skew``.
        Raises ``ValueError`` for an unknown kind or account, or bad parameters.
        """
        p = validate(kind, params)
        if account is not None and account not in self._states:
            raise ValueError(f"unknown account {account!r}")
        if account is None and kind not in MAY_BE_GLOBAL:
            raise ValueError(f"fault {kind!r} needs an account")
        done: dict[str, object] = {"account": account, "kind": kind}
        if kind == "clock_skew":
            self._clock.skew_ms = int(str(p["ms"]))
        elif kind == "rest_error":
            code = p.get("code")
            self.rest_errors.append(
                RestError(
                    account,
                    int(str(p["status"])),
                    int(str(p.get("count", 1))),
                    None if code is None else int(str(code)),
                    float(str(p.get("retry_after", 1.0))),
                )
            )
        elif kind == "refuse_ws":
            self._refuse_until[account] = self._clock.mono() + float(str(p["seconds"]))
        elif kind in SPOT_KINDS:
            done.update(self._spot_fault(account, kind, p))
        else:
            assert account is not None
            done.update(self._stream_fault(account, kind, p))
        return done

    def _stream_fault(self, account: str, kind: str, p: dict[str, object]) -> dict[str, object]:
        if kind in ("drop", "drop_rate", "duplicate", "reorder"):
            self._event_fault(account, kind, p)
            return {}
        if kind == "rest_lag":
            book = self.spot_books.get(account)
            if book is not None:
                book.set_rest_lag(float(str(p["seconds"])))
            else:
                self._states[account].set_rest_lag(float(str(p["seconds"])))
            return {}
        return self._socket_fault(account, kind, p)

    def _event_fault(self, account: str, kind: str, p: dict[str, object]) -> None:
        """Faults applied to each event before fan-out (:class:`StreamFaults`)."""
        faults = self._hub.faults[account]
        if kind == "drop":
            faults.drop += int(str(p.get("count", 1)))
        elif kind == "drop_rate":
            faults.drop_rate = float(str(p["p"]))
        elif kind == "duplicate":
            faults.duplicate += int(str(p.get("count", 1)))
        elif kind == "reorder":
            faults.reorder = max(int(str(p.get("count", 2))), 2)

    def _socket_fault(self, account: str, kind: str, p: dict[str, object]) -> dict[str, object]:
        """Faults acting on the account's open sockets (or its listenKey) now."""
        hub = self._hub
        if kind == "disconnect":
            code = p.get("code")
            if code is None:
                return {"sockets": hub.disconnect(account)}
            return {"sockets": hub.close_sockets(account, int(str(code)), b"disconnect fault")}
        if kind == "silent":
            return {"sockets": hub.silence(account, float(str(p["seconds"])))}
        if kind == "expire_listen_key":
            keys = self._keys.expire_now(account)
            for key in keys:
                hub.key_expired(key, account)
            return {"listen_key": keys[0] if keys else None, "listen_keys": keys}
        if kind == "inject_frame":
            return {"sockets": hub.inject_raw(account, str(p["raw"]))}
        if kind == "cut":
            return {"sockets": hub.close_sockets(account, 1001, b"24h connection limit")}
        return {}

    def _spot_fault(
        self, account: str | None, kind: str, p: dict[str, object]
    ) -> dict[str, object]:
        """The WS API's own faults (:mod:`.faults` lists them); spot accounts only."""
        api = self.ws_api
        if api is None or (account is not None and account not in self.spot_books):
            raise ValueError(f"fault {kind!r} is for spot accounts")
        if kind == "server_shutdown":
            return {"connections": api.shutdown(account, float(str(p.get("seconds", 1.0))))}
        if kind == "ws_api_rate_limit":
            count = int(str(p.get("count", 1)))
            api.faults.rate_limited[account] = (count, float(str(p.get("retry_after", 1.0))))
            return {}
        assert account is not None
        if kind == "terminate_subscription":
            return {"subscriptions": api.terminate_account(account)}
        count = int(str(p.get("count", 1)))
        api.faults.refuse[account] = (count, int(str(p.get("code", -2015))))
        return {}

    def apply_config(self, fault: FaultSpec) -> None:
        """A start-up fault; without an account it applies to every account."""
        params = dict(fault.params)
        if fault.account is None and fault.kind not in MAY_BE_GLOBAL:
            for name in self._states:
                if fault.kind in SPOT_KINDS and name not in self.spot_books:
                    continue
                self.inject(name, fault.kind, params)
        else:
            self.inject(fault.account, fault.kind, params)

    def ws_refused(self, owners: list[str | None]) -> bool:
        """Whether a handshake for keys of these accounts is refused now (``refuse_ws``)."""
        now = self._clock.mono()
        if self._refuse_until.get(None, 0.0) > now:
            return True
        return any(self._refuse_until.get(o, 0.0) > now for o in owners if o is not None)

    def active(self) -> list[dict[str, object]]:
        """Active faults, as ``GET /_sim/faults`` lists them."""
        out: list[dict[str, object]] = []
        now = self._clock.mono()
        for name, faults in self._hub.faults.items():
            out.extend({"account": name, **f} for f in faults.describe())
        for name, acct in self._states.items():
            if acct.rest_lag_s > 0:
                out.append({"account": name, "kind": "rest_lag", "seconds": acct.rest_lag_s})
            silent = [c.silent_until - now for c in self._hub.account_connections(name)]
            if silent and max(silent) > 0:
                out.append({"account": name, "kind": "silent", "seconds": max(silent)})
        out.extend(e.describe() for e in self.rest_errors if e.remaining > 0)
        for account, until in self._refuse_until.items():
            if until > now:
                out.append({"account": account, "kind": "refuse_ws", "seconds": until - now})
        if self._clock.skew_ms:
            out.append({"account": None, "kind": "clock_skew", "ms": self._clock.skew_ms})
        out.extend(self._ws_api_faults())
        return out

    def _ws_api_faults(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        if self.ws_api is not None:
            wf = self.ws_api.faults
            for name, (left, code) in wf.refuse.items():
                out.append({"account": name, "kind": "refuse_subscribe", "count": left,
                            "code": code})  # fmt: skip
            for who, (left, retry) in wf.rate_limited.items():
                out.append({"account": who, "kind": "ws_api_rate_limit", "count": left,
                            "retry_after": retry})  # fmt: skip
        return out

    def clear(self) -> None:
        """End every fault; held (reordered) events are released; cut sockets stay cut."""
        hub = self._hub
        for name, faults in hub.faults.items():
            faults.drop = faults.duplicate = 0
            faults.drop_rate = 0.0
            for frame in faults.flush():
                hub.deliver(name, frame)
        for acct in self._states.values():
            acct.set_rest_lag(0.0)
        for conn in hub.connections:
            conn.silent_until = 0.0
        self.rest_errors.clear()
        self._refuse_until.clear()
        if self.ws_api is not None:
            self.ws_api.faults.refuse.clear()
            self.ws_api.faults.rate_limited.clear()
        self._clock.skew_ms = 0

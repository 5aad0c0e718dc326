"""The simulator's configuration (validated when built)."""

from __future__ import annotations

import re

import msgspec

from fillstream.simulator.faults import validate
from fillstream.simulator.market import COINM, SPOT, USDM, spec_for
from fillstream.simulator.spot_keys import KEY_TYPES
from fillstream.simulator.spot_market import spot_spec

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


class FaultSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A fault applied at start-up (``--fault``); ``account`` None means every account."""

    kind: str
    account: str | None = None
    params: dict[str, object] = {}


class SimConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Everything that shapes one simulated venue.

    ``rate`` is fills per second per account from the generator (0 turns it off; manual
    ``trade()``/``burst()`` still work). ``clock_speed`` accelerates timers only (listenKey
    validity, the 24 h cut, pings, the rate-limit minute, funding); timestamps stay real.
    ``max_rounds`` stops the generator after that many rounds (deterministic runs);
    ``duration_s`` after that many real seconds.
    """

    host: str = "127.0.0.1"
    port: int = 0
    seed: int = 42
    accounts: tuple[str, ...] = ("alpha",)
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    rate: float = 5.0
    hedge_accounts: tuple[str, ...] = ()
    coinm_accounts: tuple[str, ...] = ()  # accounts whose generator trades COIN-M (market coinm)
    coinm_symbols: tuple[str, ...] = ("BTCUSD_PERP", "ETHUSD_PERP")
    coinm_algo_update: bool = True  # COIN-M algo orders push ALGO_UPDATE (unconfirmed, §B.2)
    clock_speed: float = 1.0
    ping_interval_s: float = 180.0
    pong_timeout_s: float = 600.0
    weight_limit_1m: int = 2400
    duration_s: float | None = None
    max_rounds: int | None = None
    funding_interval_s: float = 8 * 3600.0
    faults: tuple[FaultSpec, ...] = ()
    # Spot (market "spot"): accounts of their own, served on /api/v3 and the WS API.
    spot_accounts: tuple[str, ...] = ()
    spot_symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "ETHBTC", "BTCFDUSD")
    spot_key_types: dict[str, str] = {}  # spot account -> "HMAC" (default), "RSA" or "ED25519"
    spot_weight_limit_1m: int = 6000  # the spot REQUEST_WEIGHT pool (REST + WS API) per IP
    ws_api_ping_interval_s: float = 20.0
    ws_api_pong_timeout_s: float = 60.0
    ws_api_cut_after_s: float = 24 * 3600.0
    ws_api_max_active: int = 1000  # active subscriptions per connection
    ws_api_max_lifetime: int = 65535  # subscriptions over a connection's life (then reconnect)
    spot_archive_after_s: float = 90 * 24 * 3600.0  # unfilled cancelled orders: then -2026

    def market(self, account: str) -> str:
        """The product ``account`` trades: ``coinm`` if listed in ``coinm_accounts``, ``spot``
        if in ``spot_accounts``, else ``usdm``."""
        if account in self.spot_accounts:
            return SPOT
        return COINM if account in self.coinm_accounts else USDM

    @property
    def all_symbols(self) -> tuple[str, ...]:
        """Every symbol served: USDⓈ-M first (their ids and walks do not depend on COIN-M)."""
        return self.symbols + self.coinm_symbols

    @property
    def all_accounts(self) -> tuple[str, ...]:
        """Futures accounts first, then the spot ones."""
        return self.accounts + self.spot_accounts

    def __post_init__(self) -> None:
        self._check_accounts()
        self._check_market()
        self._check_timers()
        self._check_spot()
        for fault in self.faults:
            validate(fault.kind, dict(fault.params))
            if fault.account is not None and fault.account not in self.all_accounts:
                raise ValueError(f"fault {fault.kind!r} names unknown account {fault.account!r}")

    def _check_accounts(self) -> None:
        names = self.all_accounts
        if not names:
            raise ValueError("at least one account is needed")
        for name in names:
            if not _NAME.match(name):
                raise ValueError(f"account name {name!r} must match [A-Za-z0-9_-]+")
        if len(set(names)) != len(names):
            raise ValueError("account names must be unique (futures and spot together)")
        for field in ("hedge_accounts", "coinm_accounts"):
            unknown = set(getattr(self, field)) - set(self.accounts)
            if unknown:
                raise ValueError(f"{field} not in accounts: {sorted(unknown)}")

    def _check_market(self) -> None:
        if not self.symbols or len(set(self.symbols)) != len(self.symbols):
            raise ValueError("symbols must be a non-empty list without repeats")
        if len(set(self.coinm_symbols)) != len(self.coinm_symbols):
            raise ValueError("coinm_symbols must not repeat")
        if self.coinm_accounts and not self.coinm_symbols:
            raise ValueError("coinm_accounts need coinm_symbols")
        for field, symbols, product in (
            ("symbols", self.symbols, USDM),
            ("coinm_symbols", self.coinm_symbols, COINM),
        ):
            for symbol in symbols:
                if spec_for(symbol).product != product:
                    raise ValueError(f"{field}: {symbol!r} is not a {product} symbol")
        if self.rate < 0:
            raise ValueError("rate must be >= 0")

    def _check_timers(self) -> None:
        if self.clock_speed <= 0:
            raise ValueError("clock_speed must be > 0")
        if self.ping_interval_s <= 0 or self.pong_timeout_s <= 0:
            raise ValueError("ping_interval_s and pong_timeout_s must be > 0")
        if self.weight_limit_1m < 1:
            raise ValueError("weight_limit_1m must be >= 1")
        if self.funding_interval_s <= 0:
            raise ValueError("funding_interval_s must be > 0")

    def _check_spot(self) -> None:
        if len(set(self.spot_symbols)) != len(self.spot_symbols):
            raise ValueError("spot_symbols must not repeat")
        if self.spot_accounts and not self.spot_symbols:
            raise ValueError("spot_accounts need spot_symbols")
        for symbol in self.spot_symbols:
            spot_spec(symbol)
        for name, key_type in self.spot_key_types.items():
            if name not in self.spot_accounts:
                raise ValueError(f"spot_key_types: {name!r} is not a spot account")
            if key_type not in KEY_TYPES:
                raise ValueError(f"spot_key_types: {key_type!r} is not one of {KEY_TYPES}")
        if self.ws_api_max_active < 1 or self.ws_api_max_lifetime < 1:
            raise ValueError("ws_api_max_active and ws_api_max_lifetime must be >= 1")
        if self.spot_weight_limit_1m < 1:
            raise ValueError("spot_weight_limit_1m must be >= 1")
        timers = (self.ws_api_ping_interval_s, self.ws_api_pong_timeout_s, self.ws_api_cut_after_s)
        if min(timers) <= 0 or self.spot_archive_after_s < 0:
            raise ValueError("the ws_api timers must be > 0 and spot_archive_after_s >= 0")

    def key_type(self, spot_account: str) -> str:
        return self.spot_key_types.get(spot_account, "HMAC")

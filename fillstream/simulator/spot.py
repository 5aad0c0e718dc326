"""The spot venue inside the simulator: its accounts, symbols, engine, generator, REST and WS API.

Spot accounts (``SimConfig.spot_accounts``, market ``spot``) are accounts of their own: their
keys work on ``/api/v3`` and the WS API (``/ws-api/v3``) only. They share the hub (so the stream
faults and socket faults reach them) and the fault control with the futures accounts, but have
their own weight pool (6,000/min per IP, REST and WS API together).
"""

from __future__ import annotations

import random
from collections.abc import Callable

import msgspec
from aiohttp import web

from fillstream.simulator.accounts import SimAccount, make_account
from fillstream.simulator.clock import SimClock
from fillstream.simulator.config import SimConfig
from fillstream.simulator.faultcontrol import FaultControl
from fillstream.simulator.hub import Hub
from fillstream.simulator.market import SPOT
from fillstream.simulator.ratelimit import WeightLimiter
from fillstream.simulator.rest import RestContext
from fillstream.simulator.spot_book import SpotBook
from fillstream.simulator.spot_engine import SpotEngine
from fillstream.simulator.spot_generator import SpotGenerator
from fillstream.simulator.spot_keys import SpotKey, private_key_pem
from fillstream.simulator.spot_market import spot_symbols
from fillstream.simulator.spot_queries import SpotQueries
from fillstream.simulator.spot_rest import SpotRestApi
from fillstream.simulator.spot_trading import SpotTrading
from fillstream.simulator.spot_truth import spot_account_truth
from fillstream.simulator.spot_wsapi import Credentials, WsApi
from fillstream.simulator.state import AccountState


def make_spot_account(seed: int, name: str, key_type: str = "HMAC") -> SimAccount:
    """A spot account's credentials: an HMAC secret, or an RSA/Ed25519 private key (no secret)."""
    account = make_account(seed, name, market=SPOT)
    if key_type == "HMAC":
        return account
    return msgspec.structs.replace(
        account,
        api_secret="",
        key_type=key_type,
        private_key_pem=private_key_pem(seed, name, key_type),
    )


def _key(account: SimAccount) -> SpotKey:
    return SpotKey(account.key_type, secret=account.api_secret, private_pem=account.private_key_pem)


class SpotVenue:
    """Everything spot, wired to the simulator's clock, hub and fault control."""

    def __init__(
        self,
        config: SimConfig,
        clock: SimClock,
        *,
        hub: Hub,
        states: dict[str, AccountState],
        rest_context: Callable[[dict[str, AccountState], WeightLimiter], RestContext],
        fault_control: FaultControl,
    ) -> None:
        seed = config.seed
        self.states = states
        self.symbols = spot_symbols(config.spot_symbols, seed)
        self.books = {
            name: SpotBook(state, bnb_fees=random.Random(f"{seed}:spot:fees:{name}").random() < 0.5)
            for name, state in states.items()
        }
        self.engine = SpotEngine(clock, self.symbols, self.books, hub)
        self.generator = SpotGenerator(
            self.engine,
            seed=seed,
            books=list(self.books.values()),
            symbols=list(self.symbols.values()),
        )
        self.limiter = WeightLimiter(clock, config.spot_weight_limit_1m)
        keys = {name: _key(state.account) for name, state in states.items()}
        self.trading = SpotTrading(self.engine)
        self.queries = SpotQueries(self.engine, archive_after_s=config.spot_archive_after_s)
        by_key = {state.account.api_key: state for state in states.values()}
        self.rest = SpotRestApi(
            rest_context(by_key, self.limiter),
            queries=self.queries,
            trading=self.trading,
            keys=keys,
        )
        self.ws_api = WsApi(
            hub,
            clock,
            credentials={
                state.account.api_key: Credentials(state, keys[name])
                for name, state in states.items()
            },
            limiter=self.limiter,
            refused=lambda: fault_control.ws_refused([]),
            refused_account=lambda name: fault_control.ws_refused([name]),
            ping_interval_s=config.ws_api_ping_interval_s,
            pong_timeout_s=config.ws_api_pong_timeout_s,
            cut_after_s=config.ws_api_cut_after_s,
            max_active=config.ws_api_max_active,
            max_lifetime=config.ws_api_max_lifetime,
        )
        fault_control.spot_books = self.books
        fault_control.ws_api = self.ws_api

    def routes(self) -> list[web.RouteDef]:
        return self.rest.routes() + self.ws_api.routes()

    def truth(self, *, stable: bool = False) -> dict[str, object]:
        return {name: spot_account_truth(book, stable=stable) for name, book in self.books.items()}

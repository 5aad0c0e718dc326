"""The demo's spot account: gamma trades spot with an Ed25519 key, its user data a WS-API
subscription, and every fault of the schedule is one the venue takes for a spot account."""

from __future__ import annotations

from fillstream.binance.signing import KeyKind
from fillstream.ledger import Market
from fillstream.sidecar.demo import FAULT_SCHEDULE, demo_config, sim_config
from fillstream.simulator import Simulator


async def test_gamma_is_a_spot_account_with_an_ed25519_key_and_spot_faults() -> None:
    async with Simulator(sim_config(seed=42, rate_per_s=0)) as sim:
        config, environ = demo_config("postgresql://demo@127.0.0.1/demo", "nats://x:4222", sim, 0)
        gamma = config.account("gamma")
        assert gamma.market is Market.SPOT
        assert gamma.resolved_ws_url == sim.spot_record(sim.account("gamma"))["ws_api_url"]
        creds = gamma.credentials(environ)
        assert creds.key_type is KeyKind.ED25519 and creds.signer().kind is KeyKind.ED25519
        assert {a.market for a in config.accounts} == {Market.USDM, Market.COINM, Market.SPOT}
        spot_faults = [
            (kind, params) for _, name, kind, params in FAULT_SCHEDULE if name == "gamma"
        ]
        assert {kind for kind, _ in spot_faults} >= {"terminate_subscription", "refuse_subscribe"}
        for kind, params in spot_faults:  # the venue takes each (a bad one raises ValueError)
            sim.inject("gamma", kind, **params)

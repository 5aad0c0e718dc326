"""A Binance USDⓈ-M futures stand-in: REST + user-data WebSocket + ground truth + faults.

Programmatic use (tests, demo, benchmarks)::

    sim = Simulator(SimConfig(accounts=("alpha", "beta"), rate=20))
    await sim.start()
    sim.rest_url, sim.ws_url, sim.admin_url, sim.accounts[0].api_key
    sim.inject("alpha", "drop", count=3)
    truth = sim.ground_truth()
    await sim.aclose()

Command line: ``fillstream sim`` (:mod:`fillstream.simulator.cli`). Module map: ``engine``
(orders, fills, PnL), ``algos`` (TP/SL/trailing), ``risk`` (liquidation, ADL, settlement),
``generator`` (seeded activity), ``events`` (wire shapes), ``rest``/``queries``/``trading``
(REST), ``ws``/``hub`` (WebSocket), ``faults``, ``ratelimit``, ``admin``, ``truth``, ``server``.
Spot (``spot_accounts``): ``spot`` wires ``spot_market``, ``spot_book``/``spot_orders`` (state),
``spot_engine``, ``spot_generator``, ``spot_events``, ``spot_wsapi``/``spot_wsapi_rules`` (the
WS API), ``spot_rest``/``spot_queries``/``spot_trading`` (``/api/v3``), ``spot_keys``,
``spot_truth``.
"""

from fillstream.simulator.accounts import SimAccount
from fillstream.simulator.config import FaultSpec, SimConfig
from fillstream.simulator.faults import KINDS as FAULT_KINDS
from fillstream.simulator.server import Simulator

__all__ = ["FAULT_KINDS", "FaultSpec", "SimAccount", "SimConfig", "Simulator"]

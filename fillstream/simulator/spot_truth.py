"""The ground truth of a spot account (``GET /_sim/ledger``, market ``spot``).

Same top-level shape as a futures account's (:mod:`.truth`): ``fills`` are the ``myTrades`` rows
plus ``side`` and ``account``; ``closes``, ``algo_orders`` and ``positions`` are empty (spot has
no positions); ``orders`` are the final ``allOrders`` rows; ``order_lists`` the OCO/OTO lists
(``orderListId``, ``contingencyType``, ``listOrderStatus``, ``orderIds``); ``balance_events``
every ``balanceUpdate`` (kind ``DELTA``) and ``externalLockUpdate`` (kind ``EXTERNAL_LOCK``) as
``{kind, asset, delta, time}``; ``balances`` the final free and locked amount of every asset.
"""

from __future__ import annotations

from fillstream.simulator.spot_book import SpotBook
from fillstream.simulator.spot_market import f8
from fillstream.simulator.truth import tagged_rows


def spot_account_truth(book: SpotBook, *, stable: bool = False) -> dict[str, object]:
    acct = book.acct
    tag: dict[str, object] = {"account": acct.name}
    orders = (o.rest_row() for o in book.orders.values())
    return {
        "market": "spot",
        "fills": tagged_rows(acct.fills, tag, stable),
        "closes": [],
        "orders": tagged_rows(orders, tag, stable),
        "order_lists": [
            {
                "orderListId": group.list_id,
                "contingencyType": group.contingency,
                "listClientOrderId": group.client_list_id,
                "symbol": group.symbol,
                "listOrderStatus": group.order_status,
                "orderIds": [o.order_id for o in group.orders],
            }
            for group in book.lists.values()
        ],
        "algo_orders": [],
        "positions": [],
        "balance_events": tagged_rows(book.balance_events, {}, stable),
        "balances": {
            name: {"free": f8(a.free), "locked": f8(a.locked)} for name, a in book.assets.items()
        },
        "fills_generated": acct.fills_generated,
        "dropped_fill_events": acct.dropped_fill_events,
        "undelivered_fill_events": acct.undelivered_fill_events,
    }

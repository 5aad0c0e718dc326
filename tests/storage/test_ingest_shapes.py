"""The one-statement ingest holds only the parts a batch carries (sql.ingest_stream): every
combination must be a valid statement taking exactly the arguments the ledger passes for it."""

from __future__ import annotations

import itertools

import asyncpg

from fillstream.storage import fence, sql

# Arrays per part (fills travel as one JSON document), then the outbox's own three.
_PART_ARGUMENTS = {"fills": 1, "links": 7, "orders": 20, "positions": 10, "closes": 13}
_PART_ARGUMENTS["balances"] = 9


def _expected_arguments(shape: sql.StreamShape) -> int:
    n = 2 + sum(_PART_ARGUMENTS[part] for part in shape._fields if getattr(shape, part))
    n += 3 + 2 * shape.orders + 3 * shape.balances  # outbox, order tags, balance tags
    return n + shape.fills + shape.closes  # the check's expected counts


async def test_every_shape_prepares_with_its_arguments(pool: asyncpg.Pool) -> None:
    shapes = [sql.StreamShape(*bits) for bits in itertools.product((False, True), repeat=6)]
    assert sql.StreamShape(*[False] * 6).normal() == sql.StreamShape()  # an empty batch
    shapes = [shape.normal() for shape in shapes]
    async with pool.acquire() as conn:
        for shape in shapes:
            statement = sql.ingest_stream(shape)
            prepared = await conn.prepare(statement)
            assert len(prepared.get_parameters()) == _expected_arguments(shape), shape
            fenced, epoch_param = fence.fenced_statement(statement)
            assert epoch_param == _expected_arguments(shape) + 1
            assert len((await conn.prepare(fenced)).get_parameters()) == epoch_param


def test_the_lone_shape_leaves_out_what_a_lone_fill_lacks() -> None:
    lone = sql.INGEST_STREAM_LONE
    for absent in ("algo_links", "position_closes", "balance_changes", "balances"):
        assert f"INSERT INTO {absent}" not in lone
    for present in ("fills", "orders", "positions", "outbox"):
        assert f"INSERT INTO {present}" in lone
    assert "fillstream_ingest_check" in lone

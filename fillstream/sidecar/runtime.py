"""Process tuning for a long-running service: CPython's cyclic garbage collector.

Why: the service's latency tail was the collector, not PostgreSQL (docs/performance.md): with
CPython's default thresholds (700, 10, 10) a young collection runs every 700 net allocations of
tracked objects, about 20 a second at 100 fills/s, and a full collection walks every tracked
object the process holds, start-up's included (modules, the config, the pools, the decoders),
pausing the event loop for tens of milliseconds on the fill in flight. What the service allocates
per fill (frames, structs, records, payloads) is acyclic and freed by reference counting; the
collector only ever finds the rare cycle.

So, once start-up is done, :func:`tune_gc` collects once, freezes what survived (moved to the
permanent generation: no later collection walks it) and sets the thresholds of
:data:`THRESHOLDS`: fewer young collections, and full collections only when the objects promoted
since the last one reach the given multiple of generation 1's collections (CPython also waits
until those objects are a quarter of the long-lived ones). Cycles are still collected; memory
stays bounded, only later.
"""

from __future__ import annotations

import gc

# (generation 0 allocations, generation-0 collections per generation-1 one, generation-1
# collections per full one): chosen by benchmarks.end_to_end's collector figures (see
# docs/performance.md, "the tail").
THRESHOLDS = (7_000, 20, 100)


def tune_gc(thresholds: tuple[int, int, int] = THRESHOLDS) -> None:
    """Freeze what start-up allocated and set the collector's thresholds; call once start-up
    is done (``fillstream run`` does, right after :meth:`Service.start`). A second call
    freezes what survived since the first."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)

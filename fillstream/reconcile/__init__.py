"""The REST path: cursor backfills, immediate gap recovery, order sync, position sync, repair.

Imports only :mod:`fillstream.ledger` and third-party libraries; ``sidecar`` wires it to the
venue wrapper, the pipeline and the stores.
"""

from fillstream.reconcile.jobs import RunReport, Trigger, merge_gaps
from fillstream.reconcile.reconciler import Reconciler
from fillstream.reconcile.repair import MissingFill, RepairProgress, RepairReport
from fillstream.reconcile.settings import ReconcileSettings

__all__ = [
    "MissingFill",
    "ReconcileSettings",
    "Reconciler",
    "RepairProgress",
    "RepairReport",
    "RunReport",
    "Trigger",
    "merge_gaps",
]

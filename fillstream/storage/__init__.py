"""Durable sinks: the PostgreSQL ledger (migrations, repository, outbox, cursors, orders) and the
JetStream publisher and outbox relay. Imports only ``fillstream.ledger`` of ours."""

from fillstream.storage.cursors import PgCursorStore
from fillstream.storage.migrations import migrate, migrate_dsn
from fillstream.storage.orders import OrderPublishing, PgOrderView
from fillstream.storage.payloads import OutboxMessage, json_schemas
from fillstream.storage.pool import DB_ERRORS, create_pool
from fillstream.storage.publisher import JetStreamPublisher, PublishOutcome, connect
from fillstream.storage.quarantine import DATA_ERRORS, Quarantine, is_data_error
from fillstream.storage.relay import OutboxRelay, PublishedListener
from fillstream.storage.repository import IngestOutcome, Ledger

__all__ = [
    "DATA_ERRORS",
    "DB_ERRORS",
    "IngestOutcome",
    "JetStreamPublisher",
    "Ledger",
    "OrderPublishing",
    "OutboxMessage",
    "OutboxRelay",
    "PgCursorStore",
    "PgOrderView",
    "PublishOutcome",
    "PublishedListener",
    "Quarantine",
    "connect",
    "create_pool",
    "is_data_error",
    "json_schemas",
    "migrate",
    "migrate_dsn",
]

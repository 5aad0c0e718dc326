"""Spot: user-data events over WS-API subscriptions, REST rows, and the one parse module."""

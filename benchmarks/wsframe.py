"""The one helper the replay venues share: a payload as an unmasked server text frame."""

from __future__ import annotations

import struct


def ws_frame(payload: bytes) -> bytes:
    """An unmasked server text frame (RFC 6455 §5.2)."""
    size = len(payload)
    if size < 126:
        return bytes([0x81, size]) + payload
    if size < 1 << 16:
        return bytes([0x81, 126]) + struct.pack("!H", size) + payload
    return bytes([0x81, 127]) + struct.pack("!Q", size) + payload

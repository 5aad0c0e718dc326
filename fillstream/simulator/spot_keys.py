"""Spot API keys of the three kinds Binance accepts (HMAC, RSA, Ed25519) and signature checks.

HMAC accounts sign with their secret (hex HMAC-SHA256, case-insensitive). An RSA or Ed25519
account registers a public key with Binance; the simulator generates the key pair from the seed
and the account name (the same ``--seed`` gives the same keys) and hands out the private key as
PKCS#8 PEM so that clients can sign: RSA signatures are PKCS#1 v1.5 over SHA-256, Ed25519 ones
RFC 8032, both base64 (case-sensitive). pycryptodome comes with python-binance.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac

from Crypto.Hash import SHA256
from Crypto.PublicKey import ECC, RSA
from Crypto.Signature import eddsa, pkcs1_15

KEY_TYPES = ("HMAC", "RSA", "ED25519")


class _Drbg:
    """Deterministic bytes (SHA-256 in counter mode) for seeded RSA key generation."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._counter = 0
        self._buffer = b""

    def __call__(self, n: int) -> bytes:
        while len(self._buffer) < n:
            self._counter += 1
            block = hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()
            self._buffer += block
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out


@functools.lru_cache(maxsize=256)
def private_key_pem(seed: int, name: str, key_type: str) -> str:
    """The PKCS#8 PEM of the account's RSA (2048 bits) or Ed25519 key."""
    material = f"fillstream-sim:{seed}:{name}:{key_type}".encode()
    if key_type == "ED25519":
        key = ECC.construct(curve="Ed25519", seed=hashlib.sha256(material).digest())
        return str(key.export_key(format="PEM"))
    if key_type == "RSA":
        return RSA.generate(2048, randfunc=_Drbg(material)).export_key(pkcs=8).decode()
    raise ValueError(f"key type {key_type!r} has no key pair; one of {', '.join(KEY_TYPES)}")


class SpotKey:
    """Checks signatures for one account."""

    def __init__(self, key_type: str, *, secret: str = "", private_pem: str = "") -> None:
        if key_type not in KEY_TYPES:
            raise ValueError(f"unknown key type {key_type!r}; one of {', '.join(KEY_TYPES)}")
        self.key_type = key_type
        self._secret = secret.encode()
        self._rsa = None
        self._ed = None
        if key_type == "RSA":
            self._rsa = pkcs1_15.new(RSA.import_key(private_pem).public_key())
        elif key_type == "ED25519":
            self._ed = eddsa.new(ECC.import_key(private_pem).public_key(), "rfc8032")

    def valid(self, payload: str, signature: str) -> bool:
        """Whether ``signature`` signs ``payload`` (the exact bytes the server received)."""
        data = payload.encode()
        if self.key_type == "HMAC":
            expected = hmac.new(self._secret, data, hashlib.sha256).hexdigest()
            return hmac.compare_digest(expected, signature.lower())
        try:
            raw = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            return False
        try:
            if self._rsa is not None:
                self._rsa.verify(SHA256.new(data), raw)
            elif self._ed is not None:
                self._ed.verify(data, raw)
        except (ValueError, TypeError):
            return False
        return True


def sign(key_type: str, payload: str, *, secret: str = "", private_pem: str = "") -> str:
    """A signature of ``payload`` as a client makes it (tests and examples)."""
    data = payload.encode()
    if key_type == "HMAC":
        return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()
    if key_type == "RSA":
        raw = pkcs1_15.new(RSA.import_key(private_pem)).sign(SHA256.new(data))
    else:
        raw = eddsa.new(ECC.import_key(private_pem), "rfc8032").sign(data)
    return base64.b64encode(raw).decode()

"""Signing Binance payloads with any of the three key types, from the key material alone.

Binance accepts three kinds of API key (binance-wave2.md §A.3): an HMAC key (the signature is
HMAC-SHA256 of the payload, hex, case-insensitive), an RSA key (RSASSA-PKCS1-v1_5 over SHA-256,
base64) and an Ed25519 key (pure Ed25519, base64). :meth:`Signer.from_secret` tells them apart by
the material: a PEM private key is RSA or Ed25519 (whichever it holds), anything else is an HMAC
secret. pycryptodome does the asymmetric work (it is already installed as python-binance's
dependency).

The secret never leaves the signer: its ``repr`` names the kind only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from enum import StrEnum
from typing import Final

from Crypto.Hash import SHA256
from Crypto.PublicKey import ECC, RSA
from Crypto.Signature import eddsa, pkcs1_15

from fillstream.ledger import ConfigError

_PEM_PREFIX: Final = "-----BEGIN"


class KeyKind(StrEnum):
    HMAC = "hmac"
    RSA = "rsa"
    ED25519 = "ed25519"


class Signer:
    """Signs payload strings for one API key (stateless, reusable).

    Build with :meth:`from_secret`; :meth:`sign` returns the ``signature`` parameter's value.
    """

    __slots__ = ("_hmac_key", "_key", "kind")

    def __init__(
        self, kind: KeyKind, *, hmac_key: bytes = b"", key: RSA.RsaKey | ECC.EccKey | None = None
    ) -> None:
        self.kind = kind
        self._hmac_key = hmac_key
        self._key = key

    @classmethod
    def from_secret(cls, material: str, *, passphrase: str | None = None) -> Signer:
        """A signer for ``material``: an HMAC secret, or a PEM private key (RSA or Ed25519).

        Raises :class:`ConfigError` for a PEM that holds no usable private key (the message
        never contains the material)."""
        text = material.strip()
        if not text.startswith(_PEM_PREFIX):
            if not text:
                raise ConfigError("empty API secret")
            return cls(KeyKind.HMAC, hmac_key=material.encode())
        try:
            return cls(KeyKind.RSA, key=_private(RSA.import_key(text, passphrase)))
        except (ValueError, IndexError, TypeError):
            pass
        try:
            ecc = ECC.import_key(text, passphrase)
        except (ValueError, IndexError, TypeError):
            raise ConfigError("the PEM key is neither an RSA nor an Ed25519 private key") from None
        if ecc.curve != "Ed25519":
            raise ConfigError(f"unsupported key curve {ecc.curve} (Binance takes Ed25519)")
        return cls(KeyKind.ED25519, key=_private(ecc))

    def sign(self, payload: str) -> str:
        """The signature of ``payload`` (UTF-8): hex for HMAC, base64 for RSA and Ed25519."""
        data = payload.encode()
        if self.kind is KeyKind.HMAC:
            return hmac.new(self._hmac_key, data, hashlib.sha256).hexdigest()
        key = self._key
        if isinstance(key, RSA.RsaKey):
            raw = pkcs1_15.new(key).sign(SHA256.new(data))
        else:
            assert key is not None
            raw = eddsa.new(key, "rfc8032").sign(data)
        return base64.b64encode(raw).decode()

    def __repr__(self) -> str:
        return f"Signer({self.kind.value})"


def _private(key: RSA.RsaKey | ECC.EccKey) -> RSA.RsaKey | ECC.EccKey:
    if not key.has_private():
        raise ConfigError("the PEM key is a public key; the signer needs the private key")
    return key

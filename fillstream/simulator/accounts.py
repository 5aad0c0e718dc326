"""Account credentials and request signatures, checked the way Binance checks them.

Keys are derived from the seed and the account name, so a given ``--seed`` always prints the same
credentials. Signed requests carry ``timestamp`` and ``signature`` = hex HMAC-SHA256 of the exact
``totalParams`` (query string concatenated with the request body, without the ``signature``
parameter) under the account's secret.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import unquote_plus

import msgspec


class SimAccount(msgspec.Struct, frozen=True, kw_only=True):
    """The public face of a simulated account (what ``--ready-file`` lists)."""

    name: str
    api_key: str
    api_secret: str
    hedge_mode: bool = False
    market: str = "usdm"  # the product the generator trades for it: "usdm" or "coinm"
    alias: str = ""  # the account alias COIN-M events carry (top-level ``i``)
    key_type: str = "HMAC"  # spot accounts may have an RSA or Ed25519 key instead
    private_key_pem: str = ""  # RSA/Ed25519: the key clients sign with (PKCS#8 PEM)


_ALIAS_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def make_account(
    seed: int, name: str, *, hedge_mode: bool = False, market: str = "usdm"
) -> SimAccount:
    """Deterministic credentials for ``name`` under ``seed`` (64 hex characters each).

    The key works on both products' paths (one Binance account has a USDⓈ-M and a COIN-M
    wallet); ``market`` only says which of them the generator trades.
    """
    key = hashlib.sha256(f"fillstream-sim:{seed}:{name}:key".encode()).hexdigest()
    secret = hashlib.sha256(f"fillstream-sim:{seed}:{name}:secret".encode()).hexdigest()
    digest = hashlib.sha256(f"fillstream-sim:{seed}:{name}:alias".encode()).digest()
    alias = "".join(_ALIAS_LETTERS[b % len(_ALIAS_LETTERS)] for b in digest[:14])
    return SimAccount(
        name=name,
        api_key=key,
        api_secret=secret,
        hedge_mode=hedge_mode,
        market=market,
        alias=alias,
    )


def strip_signature(raw: str) -> tuple[str, str | None]:
    """Split a raw (still percent-encoded) parameter string into (payload, signature)."""
    if not raw:
        return "", None
    kept: list[str] = []
    signature: str | None = None
    for part in raw.split("&"):
        if part.startswith("signature="):
            signature = part[len("signature=") :]
        else:
            kept.append(part)
    return "&".join(kept), signature


def sign(secret: str, payload: str) -> str:
    """Hex HMAC-SHA256 of ``payload`` (what clients put in ``signature``)."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def signature_valid(secret: str, raw_query: str, raw_body: str) -> bool:
    """Whether the request's ``signature`` matches ``totalParams``.

    The signed payload is the query string followed by the body, each without its ``signature``
    parameter. Clients differ in whether they sign before or after percent-encoding (python-binance
    signs unencoded values, Binance's 2026 rule signs the encoded bytes); both forms are accepted.
    """
    query, sig_q = strip_signature(raw_query)
    body, sig_b = strip_signature(raw_body)
    given = sig_b or sig_q
    if not given:
        return False
    given = unquote_plus(given).lower()
    payload = query + body
    candidates = {payload, unquote_plus(query) + unquote_plus(body)}
    return any(hmac.compare_digest(sign(secret, c), given) for c in candidates)

"""Signatures of the three key types, and the WS-API signature payload (binance-wave2.md §A.3).

HMAC against Binance's own documented examples; RSA and Ed25519 (randomised or key-dependent)
by verifying with the public key, as the venue does."""

from __future__ import annotations

import base64

import pytest
from Crypto.Hash import SHA256
from Crypto.PublicKey import ECC, RSA
from Crypto.Signature import eddsa, pkcs1_15

from fillstream.binance.signing import KeyKind, Signer
from fillstream.binance.spot import wsapi
from fillstream.ledger import ConfigError

# Binance's documented example key (spot REST and WS-API "SIGNED request example (HMAC)").
DOC_API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


def test_hmac_matches_binance_rest_example() -> None:
    payload = (
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
        "&recvWindow=5000&timestamp=1499827319559"
    )
    signature = Signer.from_secret(DOC_SECRET).sign(payload)
    assert signature == "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


def test_ws_api_payload_sorted_and_signed_as_binance_example() -> None:
    # The params of the WS-API docs' order.place example, in the docs' (unsorted) order.
    params: dict[str, wsapi.ParamValue] = {
        "symbol": "BTCUSDT",
        "side": "SELL",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": "0.01000000",
        "price": "52000.00",
        "newOrderRespType": "ACK",
        "recvWindow": 100,
        "timestamp": 1645423376532,
        "apiKey": DOC_API_KEY,
        "signature": "ignored: never part of its own payload",
    }
    payload = wsapi.signature_payload(params)
    assert payload == (
        f"apiKey={DOC_API_KEY}&newOrderRespType=ACK&price=52000.00&quantity=0.01000000"
        "&recvWindow=100&side=SELL&symbol=BTCUSDT&timeInForce=GTC&timestamp=1645423376532"
        "&type=LIMIT"
    )
    assert Signer.from_secret(DOC_SECRET).sign(payload) == (
        "cc15477742bd704c29492d96c7ead9414dfd8e0ec4a00f947bb5bb454ddbd08a"
    )


def test_subscribe_params_sign_key_recv_window_and_timestamp() -> None:
    signer = Signer.from_secret(DOC_SECRET)
    params = wsapi.subscribe_params(
        DOC_API_KEY, signer, timestamp_ms=1747385641636, recv_window_ms=6000
    )
    expected = signer.sign(f"apiKey={DOC_API_KEY}&recvWindow=6000&timestamp=1747385641636")
    assert params == {
        "apiKey": DOC_API_KEY,
        "timestamp": 1747385641636,
        "recvWindow": 6000,
        "signature": expected,
    }
    bare = wsapi.subscribe_params(DOC_API_KEY, signer, timestamp_ms=1)
    assert "recvWindow" not in bare
    assert bare["signature"] == signer.sign(f"apiKey={DOC_API_KEY}&timestamp=1")


def test_rsa_pkcs1_v15_sha256_verifies_with_the_public_key() -> None:
    key = RSA.generate(2048)
    signer = Signer.from_secret(key.export_key().decode())
    assert signer.kind is KeyKind.RSA
    payload = f"apiKey={DOC_API_KEY}&timestamp=1747385641636"
    signature = signer.sign(payload)
    pkcs1_15.new(key.public_key()).verify(SHA256.new(payload.encode()), base64.b64decode(signature))
    with pytest.raises(ValueError, match="Invalid signature"):
        pkcs1_15.new(key.public_key()).verify(SHA256.new(b"other"), base64.b64decode(signature))


def test_ed25519_verifies_with_the_public_key() -> None:
    key = ECC.generate(curve="ed25519")
    signer = Signer.from_secret(key.export_key(format="PEM"))
    assert signer.kind is KeyKind.ED25519
    payload = f"apiKey={DOC_API_KEY}&timestamp=1747385641636"
    signature = base64.b64decode(signer.sign(payload))
    eddsa.new(key.public_key(), "rfc8032").verify(payload.encode(), signature)
    with pytest.raises(ValueError, match="not authentic"):
        eddsa.new(key.public_key(), "rfc8032").verify(b"other", signature)


def test_encrypted_pem_with_passphrase() -> None:
    key = ECC.generate(curve="ed25519")
    pem = key.export_key(
        format="PEM", passphrase="pw", protection="PBKDF2WithHMAC-SHA512AndAES256-CBC"
    )
    signer = Signer.from_secret(pem, passphrase="pw")
    payload = "apiKey=k&timestamp=1"
    eddsa.new(key.public_key(), "rfc8032").verify(
        payload.encode(), base64.b64decode(signer.sign(payload))
    )


@pytest.mark.parametrize(
    ("material", "message"),
    [
        ("", "empty API secret"),
        ("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----", "neither"),
        (RSA.generate(2048).public_key().export_key().decode(), "public key"),
        (ECC.generate(curve="p256").export_key(format="PEM"), "unsupported key curve"),
    ],
)
def test_unusable_material_is_a_config_error_without_the_material(
    material: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        Signer.from_secret(material)
    assert "not a key" not in str(info.value)


def test_repr_masks_the_secret() -> None:
    assert repr(Signer.from_secret(DOC_SECRET)) == "Signer(hmac)"


def test_refusal_retry_after_is_relative_to_server_time() -> None:
    frame = wsapi.FRAME_DECODER.decode(
        b'{"id":"7","status":429,"error":{"code":-1003,"msg":"Too many requests",'
        b'"data":{"serverTime":1659127621848,"retryAfter":1659127680000}}}'
    )
    error = wsapi.error_of(frame, method=wsapi.SUBSCRIBE, now_ms=0)
    assert (error.status, error.code, error.is_rate_limited) == (429, -1003, True)
    assert error.retry_after_s == pytest.approx(58.152)
    refused = wsapi.FRAME_DECODER.decode(
        b'{"id":"8","status":400,"error":{"code":-2015,"msg":"Invalid API-key"}}'
    )
    error = wsapi.error_of(refused, method=wsapi.SUBSCRIBE, now_ms=0)
    assert error.is_auth and error.retry_after_s is None

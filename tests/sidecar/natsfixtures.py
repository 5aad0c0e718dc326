"""Test certificates (a CA, a server certificate for 127.0.0.1/localhost, a client certificate)
made with ``cryptography``, and nats-servers of their own: with TLS (optionally mutual TLS), with
a user and password, or in operator mode (JWT + nkey ``.creds`` files)."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import ipaddress
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import nkeys
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fillstream.sidecar.embedded import free_port, nats_server_binary


class Pki(msgspec.Struct, frozen=True):
    ca: Path  # the CA certificate (PEM)
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here: verification against it must fail


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _ca(directory: Path, name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    path = directory / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key, path


def _leaf(
    directory: Path,
    name: str,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    *,
    server: bool,
) -> tuple[Path, Path]:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, key_path)
    return cert_path, key_path


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key, ca_path = _ca(directory, "test-ca")
    _, _, other = _ca(directory, "other-ca")
    server_cert, server_key = _leaf(directory, "server", (ca_cert, ca_key), server=True)
    client_cert, client_key = _leaf(directory, "client", (ca_cert, ca_key), server=False)
    return Pki(ca_path, server_cert, server_key, client_cert, client_key, other)


def tls_block(pki: Pki, *, verify: bool = False) -> str:
    """A nats-server ``tls {}`` block with the test server certificate."""
    return (
        "tls {\n"
        f'  cert_file: "{pki.server_cert}"\n'
        f'  key_file: "{pki.server_key}"\n'
        f'  ca_file: "{pki.ca}"\n'
        f"  verify: {'true' if verify else 'false'}\n"
        "}\n"
    )


class ConfNats:
    """A nats-server of its own (JetStream on) with ``extra`` configuration (TLS, auth...)."""

    def __init__(
        self, directory: Path, extra: str, *, scheme: str = "nats", jetstream: bool = True
    ) -> None:
        self.port = free_port()
        self.scheme = scheme
        directory.mkdir(parents=True, exist_ok=True)
        conf = directory / "nats.conf"
        conf.write_text(
            f'listen: "127.0.0.1:{self.port}"\n'
            + (f'jetstream {{\n  store_dir: "{directory / "js"}"\n}}\n' if jetstream else "")
            + extra
        )
        log = (directory / "nats.log").open("ab")
        self.proc = subprocess.Popen(
            [nats_server_binary(), "-c", str(conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited: {(directory / 'nats.log').read_text()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("nats-server did not listen")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_nats(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[ConfNats]:
    server = ConfNats(tmp_path_factory.mktemp("tls-nats"), tls_block(pki), scheme="tls")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def mtls_nats(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[ConfNats]:
    directory = tmp_path_factory.mktemp("mtls-nats")
    server = ConfNats(directory, tls_block(pki, verify=True), scheme="tls")
    try:
        yield server
    finally:
        server.close()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _keypair(prefix: int) -> nkeys.KeyPair:
    return nkeys.from_seed(nkeys.encode_seed(os.urandom(32), prefix))


def _jwt(issuer: nkeys.KeyPair, subject: str, name: str, nats_claims: dict[str, Any]) -> str:
    """A NATS JWT (``ed25519-nkey``) signed by ``issuer``, the way nsc writes one."""
    claims: dict[str, Any] = {
        "iat": int(time.time()),
        "iss": issuer.public_key.decode(),
        "name": name,
        "sub": subject,
        "nats": {**nats_claims, "version": 2},
    }
    digest = hashlib.new("sha512_256", json.dumps(claims, sort_keys=True).encode()).digest()
    claims["jti"] = base64.b32encode(digest).rstrip(b"=").decode()
    header = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    body = _b64(json.dumps(claims).encode())
    signature = _b64(issuer.sign(f"{header}.{body}".encode()))
    return f"{header}.{body}.{signature}"


class OperatorNats(ConfNats):
    """A nats-server in operator mode (JWT auth, memory resolver) and a valid ``.creds`` file
    for one user of its one account; ``wrong_creds`` is signed by an account it does not know."""

    def __init__(self, directory: Path) -> None:
        operator = _keypair(nkeys.PREFIX_BYTE_OPERATOR)
        account = _keypair(nkeys.PREFIX_BYTE_ACCOUNT)
        operator_jwt = _jwt(
            operator, operator.public_key.decode(), "test-operator", {"type": "operator"}
        )
        unlimited = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1}
        account_jwt = _jwt(
            operator,
            account.public_key.decode(),
            "test-account",
            {
                "type": "account",
                "limits": {**unlimited, "wildcards": True, "conn": -1, "leaf": -1},
                "default_permissions": {"pub": {}, "sub": {}},
            },
        )
        directory.mkdir(parents=True, exist_ok=True)
        self.creds = self._creds(directory / "user.creds", account)
        self.wrong_creds = self._creds(
            directory / "wrong.creds", _keypair(nkeys.PREFIX_BYTE_ACCOUNT)
        )
        super().__init__(
            directory,
            f"operator: {operator_jwt}\n"
            "resolver: MEMORY\n"
            f"resolver_preload: {{\n  {account.public_key.decode()}: {account_jwt}\n}}\n",
            jetstream=False,  # JetStream in operator mode needs a system account
        )

    @staticmethod
    def _creds(path: Path, account: nkeys.KeyPair) -> Path:
        user = _keypair(nkeys.PREFIX_BYTE_USER)
        user_jwt = _jwt(
            account,
            user.public_key.decode(),
            "test-user",
            {"type": "user", "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1},
        )
        path.write_text(
            "-----BEGIN NATS USER JWT-----\n"
            f"{user_jwt}\n"
            "------END NATS USER JWT------\n\n"
            "-----BEGIN USER NKEY SEED-----\n"
            f"{user.seed.decode()}\n"
            "------END USER NKEY SEED------\n"
        )
        path.chmod(0o600)
        return path

"""Fixtures for the signing tests: EC keys, a small model folder, and an own-CA certificate factory."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bastion.crypto.signing import SigningKey

NOW = dt.datetime.now(dt.UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False,
    )


class CA:
    """A throwaway certificate authority (root), able to issue leaf signing certificates."""

    def __init__(self, cn: str = "Bastion Test Root", curve: ec.EllipticCurve | None = None) -> None:
        self.key = ec.generate_private_key(curve or ec.SECP384R1())
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(_name(cn)).public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=10)).not_valid_after(NOW + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_usage(sign=False, ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA384())
        )

    def issue(
        self,
        key: ec.EllipticCurvePrivateKey,
        *,
        email: str | None = "alice@example.com",
        cn: str = "signer",
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        digital_signature: bool = True,
        code_signing: bool = True,
        is_ca: bool = False,
    ) -> x509.Certificate:
        b = (
            x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(self.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or NOW - dt.timedelta(days=1))
            .not_valid_after(not_after or NOW + dt.timedelta(days=30))
            .add_extension(_usage(sign=digital_signature, ca=is_ca), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        )
        if is_ca:
            b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        if code_signing:
            b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        if email:
            b = b.add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
        return b.sign(self.key, hashes.SHA256())


def pem_private(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def pem_public(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def pem_cert(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


@pytest.fixture(scope="session")
def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def p384() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture(scope="session")
def other_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def ca() -> CA:
    return CA()


@pytest.fixture
def signing_key(p256: ec.EllipticCurvePrivateKey) -> SigningKey:
    return SigningKey(name="test", private_key=p256)


@pytest.fixture
def make_model(tmp_path: Path) -> Callable[..., Path]:
    def make(name: str = "model") -> Path:
        root = tmp_path / name
        (root / "sub" / "deeper").mkdir(parents=True)
        (root / "weights.bin").write_bytes(bytes(range(256)) * 4096)
        (root / "config.json").write_text('{"layers": 3}')
        (root / "sub" / "tokenizer.txt").write_text("a b c\n")
        (root / "sub" / "deeper" / "empty.bin").write_bytes(b"")
        (root / "a-b").mkdir()
        (root / "a-b" / "x.txt").write_text("sorting: 'a-b/x' vs 'a/x'")
        (root / ".gitignore").write_text("*.pyc\n")
        return root

    return make


@pytest.fixture
def model(make_model: Callable[..., Path]) -> Path:
    return make_model()

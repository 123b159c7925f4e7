"""A local CA and the certificates of a KME pair and its SAEs (``agile kme certs``).

P-256 keys, SHA-256 signatures, one-year validity. Each KME certificate is valid for
``localhost``, ``127.0.0.1`` and ``::1``; each SAE certificate carries the SAE ID as its
subject commonName (which the KME reads as the SAE's identity) and, when the ID is a valid
DNS label, as a SAN too. Private keys are written with mode 0600. For development only:
production KMEs and SAEs take certificates from the operator's PKI.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["write_certificates", "write_network_certificates"]

_DNS_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_VALIDITY = datetime.timedelta(days=365)


def _name(common_name: str, unit: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "qkd-agile local KME")]
    if unit is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _issue(
    *,
    common_name: str,
    sans: Sequence[x509.GeneralName],
    usage: x509.ObjectIdentifier | Sequence[x509.ObjectIdentifier],
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    now: datetime.datetime,
    unit: str | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    usages = [usage] if isinstance(usage, x509.ObjectIdentifier) else list(usage)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, unit))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _make_ca(
    ca_name: str, now: datetime.datetime
) -> tuple[ec.EllipticCurvePrivateKey, x509.Name, x509.Certificate]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_subject = _name(ca_name)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_subject)
        .issuer_name(ca_subject)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return ca_key, ca_subject, ca_cert


def write_certificates(
    out: str | Path,
    *,
    saes: Sequence[str] = ("sae-a", "sae-b"),
    kmes: Sequence[str] = ("kme-a", "kme-b"),
    ca_name: str = "qkd-agile local CA",
) -> list[Path]:
    """Write ``ca.pem``, ``NAME.pem``/``NAME.key`` for each KME and SAE into ``out``.

    Returns the paths written. Refuses SAE or KME names that are not plain file names.
    """
    out = Path(out)
    for name in (*saes, *kmes):
        if not name or "/" in name or name.startswith(".") or "\x00" in name:
            raise ValueError(f"{name!r} cannot be used as a certificate file name")
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key, ca_subject, ca_cert = _make_ca(ca_name, now)
    written = [out / "ca.pem"]
    _write_cert(out / "ca.pem", ca_cert)
    roles = [(name, ExtendedKeyUsageOID.SERVER_AUTH, _local_sans(name)) for name in kmes]
    roles += [(name, ExtendedKeyUsageOID.CLIENT_AUTH, _sae_sans(name)) for name in saes]
    for name, usage, sans in roles:
        key, cert = _issue(
            common_name=name, sans=sans, usage=usage, ca_key=ca_key, ca_name=ca_subject, now=now
        )
        _write_key(out / f"{name}.key", key)
        _write_cert(out / f"{name}.pem", cert)
        written += [out / f"{name}.pem", out / f"{name}.key"]
    return written


def _local_sans(name: str) -> list[x509.GeneralName]:
    sans: list[x509.GeneralName] = [x509.DNSName("localhost")]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1")]
    if _DNS_LABEL.match(name):
        sans.insert(0, x509.DNSName(name))
    return sans


def _sae_sans(name: str) -> list[x509.GeneralName]:
    return [x509.DNSName(name)] if _DNS_LABEL.match(name) else []


def _check_file_name(kind: str, name: str) -> None:
    if not name or "/" in name or "\\" in name or name.startswith(".") or "\x00" in name:
        raise ValueError(f"{kind} {name!r} cannot be used as a directory name")


def write_network_certificates(
    out: str | Path,
    *,
    network: str,
    kmes: Sequence[str],
    saes: Sequence[str],
    operator: str = "operator",
) -> dict[str, Path]:
    """One CA for a network of KMEs, and the certificates of its KMEs, SAEs and operator.

    Writes ``ca.pem``; ``kmes/NAME/{cert,key}.pem`` for each KME node (subject OU ``KME``,
    usable as TLS server towards SAEs and as server and client between KMEs: the KME's name
    is its commonName); ``saes/NAME/{cert,key}.pem`` for each SAE (OU ``SAE``, client only);
    and ``operator/{cert,key}.pem`` (OU ``operator``: the ``agile net`` tool's identity for
    status and admin calls). The CA's private key is not kept. Returns the paths by role.
    """
    out = Path(out)
    for name in kmes:
        _check_file_name("KME node", name)
    for name in saes:
        _check_file_name("SAE", name)
    overlap = sorted(set(kmes) & set(saes))
    if overlap:
        raise ValueError(f"{overlap[0]!r} names both a KME node and an SAE; rename one")
    now = datetime.datetime.now(datetime.UTC)
    ca_key, ca_subject, ca_cert = _make_ca(f"qkd-agile network {network} CA", now)
    out.mkdir(parents=True, exist_ok=True)
    _write_cert(out / "ca.pem", ca_cert)
    written = {"ca": out / "ca.pem"}
    roles: list[tuple[str, str, Path, list[x509.ObjectIdentifier], list[x509.GeneralName]]] = []
    both = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    client = [ExtendedKeyUsageOID.CLIENT_AUTH]
    for name in kmes:
        roles.append((name, "KME", out / "kmes" / name, both, _local_sans(name)))
    for name in saes:
        roles.append((name, "SAE", out / "saes" / name, client, _sae_sans(name)))
    roles.append((operator, "operator", out / "operator", client, []))
    for name, unit, directory, usages, sans in roles:
        key, cert = _issue(
            common_name=name,
            sans=sans,
            usage=usages,
            ca_key=ca_key,
            ca_name=ca_subject,
            now=now,
            unit=unit,
        )
        directory.mkdir(parents=True, exist_ok=True)
        _write_key(directory / "key.pem", key)
        _write_cert(directory / "cert.pem", cert)
        written[f"{unit}:{name}"] = directory / "cert.pem"
    return written

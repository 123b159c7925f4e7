"""OpenSSL cipher strings for TLS 1.2 and older, evaluated without calling OpenSSL.

A cipher string (``CipherString``, nginx ``ssl_ciphers``, Apache ``SSLCipherSuite``, HAProxy
``ciphers``, stunnel ``ciphers``) is a program, not a list: ``HIGH:!aNULL:!MD5`` selects by
alias, ``!`` removes for good, ``-`` removes, ``+`` moves to the end, ``A+B`` intersects,
``@STRENGTH`` sorts and ``@SECLEVEL=n`` filters (OpenSSL's ``ciphers(1)``). This module runs
that program over a table of the TLS 1.2-and-older suites that OpenSSL 3 knows, plus the legacy
ones (RC4, single DES, 3DES, EXPORT, IDEA, SEED) that older builds still accept, so that the
audit tells what a configuration selects regardless of the OpenSSL on the auditing machine.

The selection is a set; the order OpenSSL would give it is not modelled (the audit needs
only what is reachable). A test compares the selected sets with ``openssl ciphers`` where one
is installed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Cipher:
    """One TLS 1.2-and-older cipher suite, in OpenSSL's naming and classification."""

    name: str
    version: str
    """The oldest protocol version that can negotiate it (``SSLv3``, ``TLSv1``, ``TLSv1.2``)."""
    kx: str
    """Key exchange: ``RSA`` (key transport), ``DH``, ``ECDH``, ``PSK``, ``DHEPSK``, ..."""
    au: str
    """Authentication: ``RSA``, ``ECDSA``, ``DSS``, ``PSK``, ``SRP`` or ``None`` (anonymous)."""
    enc: str
    bits: int
    mac: str
    strength: str
    """``HIGH``, ``MEDIUM``, ``LOW``, ``EXPORT`` or ``NONE`` (no encryption)."""
    legacy: bool = False
    """Not compiled into OpenSSL 3 by default (RC4, DES, EXPORT ...)."""


# The table below reads best as one positional row per suite.
def _c(  # noqa: PLR0917
    name: str,
    version: str,
    kx: str,
    au: str,
    enc: str,
    bits: int,
    mac: str,
    strength: str,
    *,
    legacy: bool = False,
) -> Cipher:
    return Cipher(
        name=name,
        version=version,
        kx=kx,
        au=au,
        enc=enc,
        bits=bits,
        mac=mac,
        strength=strength,
        legacy=legacy,
    )


# Facts from OpenSSL 3.0's cipher table (``openssl ciphers -v``); the legacy rows from the
# OpenSSL 1.0.2 table, which older stacks still run.
CIPHERS: tuple[Cipher, ...] = (
    _c("ECDHE-ECDSA-AES256-GCM-SHA384", "TLSv1.2", "ECDH", "ECDSA", "AESGCM", 256, "AEAD", "HIGH"),
    _c("ECDHE-RSA-AES256-GCM-SHA384", "TLSv1.2", "ECDH", "RSA", "AESGCM", 256, "AEAD", "HIGH"),
    _c("DHE-DSS-AES256-GCM-SHA384", "TLSv1.2", "DH", "DSS", "AESGCM", 256, "AEAD", "HIGH"),
    _c("DHE-RSA-AES256-GCM-SHA384", "TLSv1.2", "DH", "RSA", "AESGCM", 256, "AEAD", "HIGH"),
    _c(
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "TLSv1.2",
        "ECDH",
        "ECDSA",
        "CHACHA20/POLY1305",
        256,
        "AEAD",
        "HIGH",
    ),
    _c(
        "ECDHE-RSA-CHACHA20-POLY1305",
        "TLSv1.2",
        "ECDH",
        "RSA",
        "CHACHA20/POLY1305",
        256,
        "AEAD",
        "HIGH",
    ),
    _c(
        "DHE-RSA-CHACHA20-POLY1305",
        "TLSv1.2",
        "DH",
        "RSA",
        "CHACHA20/POLY1305",
        256,
        "AEAD",
        "HIGH",
    ),
    _c("ECDHE-ECDSA-AES256-CCM8", "TLSv1.2", "ECDH", "ECDSA", "AESCCM8", 256, "AEAD", "HIGH"),
    _c("ECDHE-ECDSA-AES256-CCM", "TLSv1.2", "ECDH", "ECDSA", "AESCCM", 256, "AEAD", "HIGH"),
    _c("DHE-RSA-AES256-CCM8", "TLSv1.2", "DH", "RSA", "AESCCM8", 256, "AEAD", "HIGH"),
    _c("DHE-RSA-AES256-CCM", "TLSv1.2", "DH", "RSA", "AESCCM", 256, "AEAD", "HIGH"),
    _c(
        "ECDHE-ECDSA-ARIA256-GCM-SHA384", "TLSv1.2", "ECDH", "ECDSA", "ARIAGCM", 256, "AEAD", "HIGH"
    ),
    _c("ECDHE-ARIA256-GCM-SHA384", "TLSv1.2", "ECDH", "RSA", "ARIAGCM", 256, "AEAD", "HIGH"),
    _c("DHE-DSS-ARIA256-GCM-SHA384", "TLSv1.2", "DH", "DSS", "ARIAGCM", 256, "AEAD", "HIGH"),
    _c("DHE-RSA-ARIA256-GCM-SHA384", "TLSv1.2", "DH", "RSA", "ARIAGCM", 256, "AEAD", "HIGH"),
    _c("ADH-AES256-GCM-SHA384", "TLSv1.2", "DH", "None", "AESGCM", 256, "AEAD", "HIGH"),
    _c("ECDHE-ECDSA-AES128-GCM-SHA256", "TLSv1.2", "ECDH", "ECDSA", "AESGCM", 128, "AEAD", "HIGH"),
    _c("ECDHE-RSA-AES128-GCM-SHA256", "TLSv1.2", "ECDH", "RSA", "AESGCM", 128, "AEAD", "HIGH"),
    _c("DHE-DSS-AES128-GCM-SHA256", "TLSv1.2", "DH", "DSS", "AESGCM", 128, "AEAD", "HIGH"),
    _c("DHE-RSA-AES128-GCM-SHA256", "TLSv1.2", "DH", "RSA", "AESGCM", 128, "AEAD", "HIGH"),
    _c("ECDHE-ECDSA-AES128-CCM8", "TLSv1.2", "ECDH", "ECDSA", "AESCCM8", 128, "AEAD", "HIGH"),
    _c("ECDHE-ECDSA-AES128-CCM", "TLSv1.2", "ECDH", "ECDSA", "AESCCM", 128, "AEAD", "HIGH"),
    _c("DHE-RSA-AES128-CCM8", "TLSv1.2", "DH", "RSA", "AESCCM8", 128, "AEAD", "HIGH"),
    _c("DHE-RSA-AES128-CCM", "TLSv1.2", "DH", "RSA", "AESCCM", 128, "AEAD", "HIGH"),
    _c(
        "ECDHE-ECDSA-ARIA128-GCM-SHA256", "TLSv1.2", "ECDH", "ECDSA", "ARIAGCM", 128, "AEAD", "HIGH"
    ),
    _c("ECDHE-ARIA128-GCM-SHA256", "TLSv1.2", "ECDH", "RSA", "ARIAGCM", 128, "AEAD", "HIGH"),
    _c("DHE-DSS-ARIA128-GCM-SHA256", "TLSv1.2", "DH", "DSS", "ARIAGCM", 128, "AEAD", "HIGH"),
    _c("DHE-RSA-ARIA128-GCM-SHA256", "TLSv1.2", "DH", "RSA", "ARIAGCM", 128, "AEAD", "HIGH"),
    _c("ADH-AES128-GCM-SHA256", "TLSv1.2", "DH", "None", "AESGCM", 128, "AEAD", "HIGH"),
    _c("ECDHE-ECDSA-AES256-SHA384", "TLSv1.2", "ECDH", "ECDSA", "AES", 256, "SHA384", "HIGH"),
    _c("ECDHE-RSA-AES256-SHA384", "TLSv1.2", "ECDH", "RSA", "AES", 256, "SHA384", "HIGH"),
    _c("DHE-RSA-AES256-SHA256", "TLSv1.2", "DH", "RSA", "AES", 256, "SHA256", "HIGH"),
    _c("DHE-DSS-AES256-SHA256", "TLSv1.2", "DH", "DSS", "AES", 256, "SHA256", "HIGH"),
    _c(
        "ECDHE-ECDSA-CAMELLIA256-SHA384",
        "TLSv1.2",
        "ECDH",
        "ECDSA",
        "Camellia",
        256,
        "SHA384",
        "HIGH",
    ),
    _c("ECDHE-RSA-CAMELLIA256-SHA384", "TLSv1.2", "ECDH", "RSA", "Camellia", 256, "SHA384", "HIGH"),
    _c("DHE-RSA-CAMELLIA256-SHA256", "TLSv1.2", "DH", "RSA", "Camellia", 256, "SHA256", "HIGH"),
    _c("DHE-DSS-CAMELLIA256-SHA256", "TLSv1.2", "DH", "DSS", "Camellia", 256, "SHA256", "HIGH"),
    _c("ADH-AES256-SHA256", "TLSv1.2", "DH", "None", "AES", 256, "SHA256", "HIGH"),
    _c("ADH-CAMELLIA256-SHA256", "TLSv1.2", "DH", "None", "Camellia", 256, "SHA256", "HIGH"),
    _c("ECDHE-ECDSA-AES128-SHA256", "TLSv1.2", "ECDH", "ECDSA", "AES", 128, "SHA256", "HIGH"),
    _c("ECDHE-RSA-AES128-SHA256", "TLSv1.2", "ECDH", "RSA", "AES", 128, "SHA256", "HIGH"),
    _c("DHE-RSA-AES128-SHA256", "TLSv1.2", "DH", "RSA", "AES", 128, "SHA256", "HIGH"),
    _c("DHE-DSS-AES128-SHA256", "TLSv1.2", "DH", "DSS", "AES", 128, "SHA256", "HIGH"),
    _c(
        "ECDHE-ECDSA-CAMELLIA128-SHA256",
        "TLSv1.2",
        "ECDH",
        "ECDSA",
        "Camellia",
        128,
        "SHA256",
        "HIGH",
    ),
    _c("ECDHE-RSA-CAMELLIA128-SHA256", "TLSv1.2", "ECDH", "RSA", "Camellia", 128, "SHA256", "HIGH"),
    _c("DHE-RSA-CAMELLIA128-SHA256", "TLSv1.2", "DH", "RSA", "Camellia", 128, "SHA256", "HIGH"),
    _c("DHE-DSS-CAMELLIA128-SHA256", "TLSv1.2", "DH", "DSS", "Camellia", 128, "SHA256", "HIGH"),
    _c("ADH-AES128-SHA256", "TLSv1.2", "DH", "None", "AES", 128, "SHA256", "HIGH"),
    _c("ADH-CAMELLIA128-SHA256", "TLSv1.2", "DH", "None", "Camellia", 128, "SHA256", "HIGH"),
    _c("ECDHE-ECDSA-AES256-SHA", "TLSv1", "ECDH", "ECDSA", "AES", 256, "SHA1", "HIGH"),
    _c("ECDHE-RSA-AES256-SHA", "TLSv1", "ECDH", "RSA", "AES", 256, "SHA1", "HIGH"),
    _c("DHE-RSA-AES256-SHA", "SSLv3", "DH", "RSA", "AES", 256, "SHA1", "HIGH"),
    _c("DHE-DSS-AES256-SHA", "SSLv3", "DH", "DSS", "AES", 256, "SHA1", "HIGH"),
    _c("DHE-RSA-CAMELLIA256-SHA", "SSLv3", "DH", "RSA", "Camellia", 256, "SHA1", "HIGH"),
    _c("DHE-DSS-CAMELLIA256-SHA", "SSLv3", "DH", "DSS", "Camellia", 256, "SHA1", "HIGH"),
    _c("AECDH-AES256-SHA", "TLSv1", "ECDH", "None", "AES", 256, "SHA1", "HIGH"),
    _c("ADH-AES256-SHA", "SSLv3", "DH", "None", "AES", 256, "SHA1", "HIGH"),
    _c("ADH-CAMELLIA256-SHA", "SSLv3", "DH", "None", "Camellia", 256, "SHA1", "HIGH"),
    _c("ECDHE-ECDSA-AES128-SHA", "TLSv1", "ECDH", "ECDSA", "AES", 128, "SHA1", "HIGH"),
    _c("ECDHE-RSA-AES128-SHA", "TLSv1", "ECDH", "RSA", "AES", 128, "SHA1", "HIGH"),
    _c("DHE-RSA-AES128-SHA", "SSLv3", "DH", "RSA", "AES", 128, "SHA1", "HIGH"),
    _c("DHE-DSS-AES128-SHA", "SSLv3", "DH", "DSS", "AES", 128, "SHA1", "HIGH"),
    _c("DHE-RSA-CAMELLIA128-SHA", "SSLv3", "DH", "RSA", "Camellia", 128, "SHA1", "HIGH"),
    _c("DHE-DSS-CAMELLIA128-SHA", "SSLv3", "DH", "DSS", "Camellia", 128, "SHA1", "HIGH"),
    _c("AECDH-AES128-SHA", "TLSv1", "ECDH", "None", "AES", 128, "SHA1", "HIGH"),
    _c("ADH-AES128-SHA", "SSLv3", "DH", "None", "AES", 128, "SHA1", "HIGH"),
    _c("ADH-CAMELLIA128-SHA", "SSLv3", "DH", "None", "Camellia", 128, "SHA1", "HIGH"),
    _c("RSA-PSK-AES256-GCM-SHA384", "TLSv1.2", "RSAPSK", "RSA", "AESGCM", 256, "AEAD", "HIGH"),
    _c("DHE-PSK-AES256-GCM-SHA384", "TLSv1.2", "DHEPSK", "PSK", "AESGCM", 256, "AEAD", "HIGH"),
    _c(
        "RSA-PSK-CHACHA20-POLY1305",
        "TLSv1.2",
        "RSAPSK",
        "RSA",
        "CHACHA20/POLY1305",
        256,
        "AEAD",
        "HIGH",
    ),
    _c(
        "DHE-PSK-CHACHA20-POLY1305",
        "TLSv1.2",
        "DHEPSK",
        "PSK",
        "CHACHA20/POLY1305",
        256,
        "AEAD",
        "HIGH",
    ),
    _c(
        "ECDHE-PSK-CHACHA20-POLY1305",
        "TLSv1.2",
        "ECDHEPSK",
        "PSK",
        "CHACHA20/POLY1305",
        256,
        "AEAD",
        "HIGH",
    ),
    _c("DHE-PSK-AES256-CCM8", "TLSv1.2", "DHEPSK", "PSK", "AESCCM8", 256, "AEAD", "HIGH"),
    _c("DHE-PSK-AES256-CCM", "TLSv1.2", "DHEPSK", "PSK", "AESCCM", 256, "AEAD", "HIGH"),
    _c("RSA-PSK-ARIA256-GCM-SHA384", "TLSv1.2", "RSAPSK", "RSA", "ARIAGCM", 256, "AEAD", "HIGH"),
    _c("DHE-PSK-ARIA256-GCM-SHA384", "TLSv1.2", "DHEPSK", "PSK", "ARIAGCM", 256, "AEAD", "HIGH"),
    _c("AES256-GCM-SHA384", "TLSv1.2", "RSA", "RSA", "AESGCM", 256, "AEAD", "HIGH"),
    _c("AES256-CCM8", "TLSv1.2", "RSA", "RSA", "AESCCM8", 256, "AEAD", "HIGH"),
    _c("AES256-CCM", "TLSv1.2", "RSA", "RSA", "AESCCM", 256, "AEAD", "HIGH"),
    _c("ARIA256-GCM-SHA384", "TLSv1.2", "RSA", "RSA", "ARIAGCM", 256, "AEAD", "HIGH"),
    _c("PSK-AES256-GCM-SHA384", "TLSv1.2", "PSK", "PSK", "AESGCM", 256, "AEAD", "HIGH"),
    _c("PSK-CHACHA20-POLY1305", "TLSv1.2", "PSK", "PSK", "CHACHA20/POLY1305", 256, "AEAD", "HIGH"),
    _c("PSK-AES256-CCM8", "TLSv1.2", "PSK", "PSK", "AESCCM8", 256, "AEAD", "HIGH"),
    _c("PSK-AES256-CCM", "TLSv1.2", "PSK", "PSK", "AESCCM", 256, "AEAD", "HIGH"),
    _c("PSK-ARIA256-GCM-SHA384", "TLSv1.2", "PSK", "PSK", "ARIAGCM", 256, "AEAD", "HIGH"),
    _c("RSA-PSK-AES128-GCM-SHA256", "TLSv1.2", "RSAPSK", "RSA", "AESGCM", 128, "AEAD", "HIGH"),
    _c("DHE-PSK-AES128-GCM-SHA256", "TLSv1.2", "DHEPSK", "PSK", "AESGCM", 128, "AEAD", "HIGH"),
    _c("DHE-PSK-AES128-CCM8", "TLSv1.2", "DHEPSK", "PSK", "AESCCM8", 128, "AEAD", "HIGH"),
    _c("DHE-PSK-AES128-CCM", "TLSv1.2", "DHEPSK", "PSK", "AESCCM", 128, "AEAD", "HIGH"),
    _c("RSA-PSK-ARIA128-GCM-SHA256", "TLSv1.2", "RSAPSK", "RSA", "ARIAGCM", 128, "AEAD", "HIGH"),
    _c("DHE-PSK-ARIA128-GCM-SHA256", "TLSv1.2", "DHEPSK", "PSK", "ARIAGCM", 128, "AEAD", "HIGH"),
    _c("AES128-GCM-SHA256", "TLSv1.2", "RSA", "RSA", "AESGCM", 128, "AEAD", "HIGH"),
    _c("AES128-CCM8", "TLSv1.2", "RSA", "RSA", "AESCCM8", 128, "AEAD", "HIGH"),
    _c("AES128-CCM", "TLSv1.2", "RSA", "RSA", "AESCCM", 128, "AEAD", "HIGH"),
    _c("ARIA128-GCM-SHA256", "TLSv1.2", "RSA", "RSA", "ARIAGCM", 128, "AEAD", "HIGH"),
    _c("PSK-AES128-GCM-SHA256", "TLSv1.2", "PSK", "PSK", "AESGCM", 128, "AEAD", "HIGH"),
    _c("PSK-AES128-CCM8", "TLSv1.2", "PSK", "PSK", "AESCCM8", 128, "AEAD", "HIGH"),
    _c("PSK-AES128-CCM", "TLSv1.2", "PSK", "PSK", "AESCCM", 128, "AEAD", "HIGH"),
    _c("PSK-ARIA128-GCM-SHA256", "TLSv1.2", "PSK", "PSK", "ARIAGCM", 128, "AEAD", "HIGH"),
    _c("AES256-SHA256", "TLSv1.2", "RSA", "RSA", "AES", 256, "SHA256", "HIGH"),
    _c("CAMELLIA256-SHA256", "TLSv1.2", "RSA", "RSA", "Camellia", 256, "SHA256", "HIGH"),
    _c("AES128-SHA256", "TLSv1.2", "RSA", "RSA", "AES", 128, "SHA256", "HIGH"),
    _c("CAMELLIA128-SHA256", "TLSv1.2", "RSA", "RSA", "Camellia", 128, "SHA256", "HIGH"),
    _c("ECDHE-PSK-AES256-CBC-SHA384", "TLSv1", "ECDHEPSK", "PSK", "AES", 256, "SHA384", "HIGH"),
    _c("ECDHE-PSK-AES256-CBC-SHA", "TLSv1", "ECDHEPSK", "PSK", "AES", 256, "SHA1", "HIGH"),
    _c("SRP-DSS-AES-256-CBC-SHA", "SSLv3", "SRP", "DSS", "AES", 256, "SHA1", "HIGH"),
    _c("SRP-RSA-AES-256-CBC-SHA", "SSLv3", "SRP", "RSA", "AES", 256, "SHA1", "HIGH"),
    _c("SRP-AES-256-CBC-SHA", "SSLv3", "SRP", "SRP", "AES", 256, "SHA1", "HIGH"),
    _c("RSA-PSK-AES256-CBC-SHA384", "TLSv1", "RSAPSK", "RSA", "AES", 256, "SHA384", "HIGH"),
    _c("DHE-PSK-AES256-CBC-SHA384", "TLSv1", "DHEPSK", "PSK", "AES", 256, "SHA384", "HIGH"),
    _c("RSA-PSK-AES256-CBC-SHA", "SSLv3", "RSAPSK", "RSA", "AES", 256, "SHA1", "HIGH"),
    _c("DHE-PSK-AES256-CBC-SHA", "SSLv3", "DHEPSK", "PSK", "AES", 256, "SHA1", "HIGH"),
    _c(
        "ECDHE-PSK-CAMELLIA256-SHA384",
        "TLSv1",
        "ECDHEPSK",
        "PSK",
        "Camellia",
        256,
        "SHA384",
        "HIGH",
    ),
    _c("RSA-PSK-CAMELLIA256-SHA384", "TLSv1", "RSAPSK", "RSA", "Camellia", 256, "SHA384", "HIGH"),
    _c("DHE-PSK-CAMELLIA256-SHA384", "TLSv1", "DHEPSK", "PSK", "Camellia", 256, "SHA384", "HIGH"),
    _c("AES256-SHA", "SSLv3", "RSA", "RSA", "AES", 256, "SHA1", "HIGH"),
    _c("CAMELLIA256-SHA", "SSLv3", "RSA", "RSA", "Camellia", 256, "SHA1", "HIGH"),
    _c("PSK-AES256-CBC-SHA384", "TLSv1", "PSK", "PSK", "AES", 256, "SHA384", "HIGH"),
    _c("PSK-AES256-CBC-SHA", "SSLv3", "PSK", "PSK", "AES", 256, "SHA1", "HIGH"),
    _c("PSK-CAMELLIA256-SHA384", "TLSv1", "PSK", "PSK", "Camellia", 256, "SHA384", "HIGH"),
    _c("ECDHE-PSK-AES128-CBC-SHA256", "TLSv1", "ECDHEPSK", "PSK", "AES", 128, "SHA256", "HIGH"),
    _c("ECDHE-PSK-AES128-CBC-SHA", "TLSv1", "ECDHEPSK", "PSK", "AES", 128, "SHA1", "HIGH"),
    _c("SRP-DSS-AES-128-CBC-SHA", "SSLv3", "SRP", "DSS", "AES", 128, "SHA1", "HIGH"),
    _c("SRP-RSA-AES-128-CBC-SHA", "SSLv3", "SRP", "RSA", "AES", 128, "SHA1", "HIGH"),
    _c("SRP-AES-128-CBC-SHA", "SSLv3", "SRP", "SRP", "AES", 128, "SHA1", "HIGH"),
    _c("RSA-PSK-AES128-CBC-SHA256", "TLSv1", "RSAPSK", "RSA", "AES", 128, "SHA256", "HIGH"),
    _c("DHE-PSK-AES128-CBC-SHA256", "TLSv1", "DHEPSK", "PSK", "AES", 128, "SHA256", "HIGH"),
    _c("RSA-PSK-AES128-CBC-SHA", "SSLv3", "RSAPSK", "RSA", "AES", 128, "SHA1", "HIGH"),
    _c("DHE-PSK-AES128-CBC-SHA", "SSLv3", "DHEPSK", "PSK", "AES", 128, "SHA1", "HIGH"),
    _c(
        "ECDHE-PSK-CAMELLIA128-SHA256",
        "TLSv1",
        "ECDHEPSK",
        "PSK",
        "Camellia",
        128,
        "SHA256",
        "HIGH",
    ),
    _c("RSA-PSK-CAMELLIA128-SHA256", "TLSv1", "RSAPSK", "RSA", "Camellia", 128, "SHA256", "HIGH"),
    _c("DHE-PSK-CAMELLIA128-SHA256", "TLSv1", "DHEPSK", "PSK", "Camellia", 128, "SHA256", "HIGH"),
    _c("AES128-SHA", "SSLv3", "RSA", "RSA", "AES", 128, "SHA1", "HIGH"),
    _c("CAMELLIA128-SHA", "SSLv3", "RSA", "RSA", "Camellia", 128, "SHA1", "HIGH"),
    _c("PSK-AES128-CBC-SHA256", "TLSv1", "PSK", "PSK", "AES", 128, "SHA256", "HIGH"),
    _c("PSK-AES128-CBC-SHA", "SSLv3", "PSK", "PSK", "AES", 128, "SHA1", "HIGH"),
    _c("PSK-CAMELLIA128-SHA256", "TLSv1", "PSK", "PSK", "Camellia", 128, "SHA256", "HIGH"),
    _c("ECDHE-ECDSA-NULL-SHA", "TLSv1", "ECDH", "ECDSA", "None", 0, "SHA1", "NONE"),
    _c("ECDHE-RSA-NULL-SHA", "TLSv1", "ECDH", "RSA", "None", 0, "SHA1", "NONE"),
    _c("AECDH-NULL-SHA", "TLSv1", "ECDH", "None", "None", 0, "SHA1", "NONE"),
    _c("NULL-SHA256", "TLSv1.2", "RSA", "RSA", "None", 0, "SHA256", "NONE"),
    _c("ECDHE-PSK-NULL-SHA384", "TLSv1", "ECDHEPSK", "PSK", "None", 0, "SHA384", "NONE"),
    _c("ECDHE-PSK-NULL-SHA256", "TLSv1", "ECDHEPSK", "PSK", "None", 0, "SHA256", "NONE"),
    _c("ECDHE-PSK-NULL-SHA", "TLSv1", "ECDHEPSK", "PSK", "None", 0, "SHA1", "NONE"),
    _c("RSA-PSK-NULL-SHA384", "TLSv1", "RSAPSK", "RSA", "None", 0, "SHA384", "NONE"),
    _c("RSA-PSK-NULL-SHA256", "TLSv1", "RSAPSK", "RSA", "None", 0, "SHA256", "NONE"),
    _c("DHE-PSK-NULL-SHA384", "TLSv1", "DHEPSK", "PSK", "None", 0, "SHA384", "NONE"),
    _c("DHE-PSK-NULL-SHA256", "TLSv1", "DHEPSK", "PSK", "None", 0, "SHA256", "NONE"),
    _c("RSA-PSK-NULL-SHA", "SSLv3", "RSAPSK", "RSA", "None", 0, "SHA1", "NONE"),
    _c("DHE-PSK-NULL-SHA", "SSLv3", "DHEPSK", "PSK", "None", 0, "SHA1", "NONE"),
    _c("NULL-SHA", "SSLv3", "RSA", "RSA", "None", 0, "SHA1", "NONE"),
    _c("NULL-MD5", "SSLv3", "RSA", "RSA", "None", 0, "MD5", "NONE"),
    _c("PSK-NULL-SHA384", "TLSv1", "PSK", "PSK", "None", 0, "SHA384", "NONE"),
    _c("PSK-NULL-SHA256", "TLSv1", "PSK", "PSK", "None", 0, "SHA256", "NONE"),
    _c("PSK-NULL-SHA", "SSLv3", "PSK", "PSK", "None", 0, "SHA1", "NONE"),
    _c("DES-CBC3-SHA", "SSLv3", "RSA", "RSA", "3DES", 112, "SHA1", "MEDIUM", legacy=True),
    _c(
        "ECDHE-RSA-DES-CBC3-SHA", "TLSv1", "ECDH", "RSA", "3DES", 112, "SHA1", "MEDIUM", legacy=True
    ),
    _c(
        "ECDHE-ECDSA-DES-CBC3-SHA",
        "TLSv1",
        "ECDH",
        "ECDSA",
        "3DES",
        112,
        "SHA1",
        "MEDIUM",
        legacy=True,
    ),
    _c("EDH-RSA-DES-CBC3-SHA", "SSLv3", "DH", "RSA", "3DES", 112, "SHA1", "MEDIUM", legacy=True),
    _c("EDH-DSS-DES-CBC3-SHA", "SSLv3", "DH", "DSS", "3DES", 112, "SHA1", "MEDIUM", legacy=True),
    _c("ADH-DES-CBC3-SHA", "SSLv3", "DH", "None", "3DES", 112, "SHA1", "MEDIUM", legacy=True),
    _c("RC4-SHA", "SSLv3", "RSA", "RSA", "RC4", 128, "SHA1", "MEDIUM", legacy=True),
    _c("RC4-MD5", "SSLv3", "RSA", "RSA", "RC4", 128, "MD5", "MEDIUM", legacy=True),
    _c("ECDHE-RSA-RC4-SHA", "TLSv1", "ECDH", "RSA", "RC4", 128, "SHA1", "MEDIUM", legacy=True),
    _c("ECDHE-ECDSA-RC4-SHA", "TLSv1", "ECDH", "ECDSA", "RC4", 128, "SHA1", "MEDIUM", legacy=True),
    _c("ADH-RC4-MD5", "SSLv3", "DH", "None", "RC4", 128, "MD5", "MEDIUM", legacy=True),
    _c("IDEA-CBC-SHA", "SSLv3", "RSA", "RSA", "IDEA", 128, "SHA1", "MEDIUM", legacy=True),
    _c("SEED-SHA", "SSLv3", "RSA", "RSA", "SEED", 128, "SHA1", "MEDIUM", legacy=True),
    _c("DHE-RSA-SEED-SHA", "SSLv3", "DH", "RSA", "SEED", 128, "SHA1", "MEDIUM", legacy=True),
    _c("DES-CBC-SHA", "SSLv3", "RSA", "RSA", "DES", 56, "SHA1", "LOW", legacy=True),
    _c("EDH-RSA-DES-CBC-SHA", "SSLv3", "DH", "RSA", "DES", 56, "SHA1", "LOW", legacy=True),
    _c("EXP-RC4-MD5", "SSLv3", "RSA", "RSA", "RC4", 40, "MD5", "EXPORT", legacy=True),
    _c("EXP-DES-CBC-SHA", "SSLv3", "RSA", "RSA", "DES", 40, "SHA1", "EXPORT", legacy=True),
    _c("EXP-EDH-RSA-DES-CBC-SHA", "SSLv3", "DH", "RSA", "DES", 40, "SHA1", "EXPORT", legacy=True),
)

# OpenSSL flags these "not default" (COMPLEMENTOFDEFAULT): anonymous, DSS, CCM, ARIA, Camellia,
# SRP and some PSK suites; every legacy suite is outside DEFAULT too.
_NOT_DEFAULT: frozenset[str] = frozenset(
    (
        "ADH-AES128-GCM-SHA256",
        "ADH-AES128-SHA",
        "ADH-AES128-SHA256",
        "ADH-AES256-GCM-SHA384",
        "ADH-AES256-SHA",
        "ADH-AES256-SHA256",
        "ADH-CAMELLIA128-SHA",
        "ADH-CAMELLIA128-SHA256",
        "ADH-CAMELLIA256-SHA",
        "ADH-CAMELLIA256-SHA256",
        "AECDH-AES128-SHA",
        "AECDH-AES256-SHA",
        "AES128-CCM",
        "AES128-CCM8",
        "AES256-CCM",
        "AES256-CCM8",
        "ARIA128-GCM-SHA256",
        "ARIA256-GCM-SHA384",
        "CAMELLIA128-SHA",
        "CAMELLIA128-SHA256",
        "CAMELLIA256-SHA",
        "CAMELLIA256-SHA256",
        "DHE-DSS-AES128-GCM-SHA256",
        "DHE-DSS-AES128-SHA",
        "DHE-DSS-AES128-SHA256",
        "DHE-DSS-AES256-GCM-SHA384",
        "DHE-DSS-AES256-SHA",
        "DHE-DSS-AES256-SHA256",
        "DHE-DSS-ARIA128-GCM-SHA256",
        "DHE-DSS-ARIA256-GCM-SHA384",
        "DHE-DSS-CAMELLIA128-SHA",
        "DHE-DSS-CAMELLIA128-SHA256",
        "DHE-DSS-CAMELLIA256-SHA",
        "DHE-DSS-CAMELLIA256-SHA256",
        "DHE-PSK-AES128-CCM",
        "DHE-PSK-AES128-CCM8",
        "DHE-PSK-AES256-CCM",
        "DHE-PSK-AES256-CCM8",
        "DHE-PSK-ARIA128-GCM-SHA256",
        "DHE-PSK-ARIA256-GCM-SHA384",
        "DHE-PSK-CAMELLIA128-SHA256",
        "DHE-PSK-CAMELLIA256-SHA384",
        "DHE-RSA-AES128-CCM",
        "DHE-RSA-AES128-CCM8",
        "DHE-RSA-AES256-CCM",
        "DHE-RSA-AES256-CCM8",
        "DHE-RSA-ARIA128-GCM-SHA256",
        "DHE-RSA-ARIA256-GCM-SHA384",
        "DHE-RSA-CAMELLIA128-SHA",
        "DHE-RSA-CAMELLIA128-SHA256",
        "DHE-RSA-CAMELLIA256-SHA",
        "DHE-RSA-CAMELLIA256-SHA256",
        "ECDHE-ARIA128-GCM-SHA256",
        "ECDHE-ARIA256-GCM-SHA384",
        "ECDHE-ECDSA-AES128-CCM",
        "ECDHE-ECDSA-AES128-CCM8",
        "ECDHE-ECDSA-AES256-CCM",
        "ECDHE-ECDSA-AES256-CCM8",
        "ECDHE-ECDSA-ARIA128-GCM-SHA256",
        "ECDHE-ECDSA-ARIA256-GCM-SHA384",
        "ECDHE-ECDSA-CAMELLIA128-SHA256",
        "ECDHE-ECDSA-CAMELLIA256-SHA384",
        "ECDHE-PSK-CAMELLIA128-SHA256",
        "ECDHE-PSK-CAMELLIA256-SHA384",
        "ECDHE-RSA-CAMELLIA128-SHA256",
        "ECDHE-RSA-CAMELLIA256-SHA384",
        "PSK-AES128-CCM",
        "PSK-AES128-CCM8",
        "PSK-AES256-CCM",
        "PSK-AES256-CCM8",
        "PSK-ARIA128-GCM-SHA256",
        "PSK-ARIA256-GCM-SHA384",
        "PSK-CAMELLIA128-SHA256",
        "PSK-CAMELLIA256-SHA384",
        "RSA-PSK-ARIA128-GCM-SHA256",
        "RSA-PSK-ARIA256-GCM-SHA384",
        "RSA-PSK-CAMELLIA128-SHA256",
        "RSA-PSK-CAMELLIA256-SHA384",
        "SRP-DSS-AES-128-CBC-SHA",
        "SRP-DSS-AES-256-CBC-SHA",
    )
) | frozenset(c.name for c in CIPHERS if c.legacy)

_BY_NAME: dict[str, Cipher] = {c.name: c for c in CIPHERS}

_PSK_KX = frozenset({"PSK", "DHEPSK", "ECDHEPSK", "RSAPSK"})

# Each alias is a predicate over the table, as OpenSSL's ciphers(1) defines it.
_ALIASES: dict[str, object] = {
    "ALL": lambda c: c.enc != "None",
    "COMPLEMENTOFALL": lambda c: c.enc == "None",
    "COMPLEMENTOFDEFAULT": lambda c: c.name in _NOT_DEFAULT,
    "HIGH": lambda c: c.strength == "HIGH",
    "MEDIUM": lambda c: c.strength == "MEDIUM",
    "LOW": lambda c: c.strength == "LOW",
    "EXPORT": lambda c: c.strength == "EXPORT",
    "EXP": lambda c: c.strength == "EXPORT",
    "eNULL": lambda c: c.enc == "None",
    "NULL": lambda c: c.enc == "None",
    "aNULL": lambda c: c.au == "None",
    "kRSA": lambda c: c.kx == "RSA",
    "RSA": lambda c: c.kx == "RSA",
    "aRSA": lambda c: c.au == "RSA",
    "kDHE": lambda c: c.kx == "DH",
    "kEDH": lambda c: c.kx == "DH",
    "DH": lambda c: c.kx == "DH",
    "DHE": lambda c: c.kx == "DH" and c.au != "None",
    "EDH": lambda c: c.kx == "DH" and c.au != "None",
    "ADH": lambda c: c.kx == "DH" and c.au == "None",
    "kECDHE": lambda c: c.kx == "ECDH",
    "kEECDH": lambda c: c.kx == "ECDH",
    "ECDH": lambda c: c.kx == "ECDH",
    "ECDHE": lambda c: c.kx == "ECDH" and c.au != "None",
    "EECDH": lambda c: c.kx == "ECDH" and c.au != "None",
    "AECDH": lambda c: c.kx == "ECDH" and c.au == "None",
    "aECDSA": lambda c: c.au == "ECDSA",
    "ECDSA": lambda c: c.au == "ECDSA",
    "aDSS": lambda c: c.au == "DSS",
    "DSS": lambda c: c.au == "DSS",
    "kPSK": lambda c: c.kx == "PSK",
    "kDHEPSK": lambda c: c.kx == "DHEPSK",
    "kECDHEPSK": lambda c: c.kx == "ECDHEPSK",
    "kRSAPSK": lambda c: c.kx == "RSAPSK",
    "aPSK": lambda c: c.au == "PSK",
    "PSK": lambda c: c.kx in _PSK_KX,
    "kSRP": lambda c: c.kx == "SRP",
    "SRP": lambda c: c.kx == "SRP",
    "aSRP": lambda c: c.au == "SRP",
    "AES": lambda c: c.enc.startswith("AES"),
    "AES128": lambda c: c.enc.startswith("AES") and c.bits == 128,
    "AES256": lambda c: c.enc.startswith("AES") and c.bits == 256,
    "AESGCM": lambda c: c.enc == "AESGCM",
    "AESCCM": lambda c: c.enc in {"AESCCM", "AESCCM8"},
    "AESCCM8": lambda c: c.enc == "AESCCM8",
    "CHACHA20": lambda c: c.enc.startswith("CHACHA20"),
    "CAMELLIA": lambda c: c.enc == "Camellia",
    "CAMELLIA128": lambda c: c.enc == "Camellia" and c.bits == 128,
    "CAMELLIA256": lambda c: c.enc == "Camellia" and c.bits == 256,
    "ARIA": lambda c: c.enc.startswith("ARIA"),
    "ARIA128": lambda c: c.enc.startswith("ARIA") and c.bits == 128,
    "ARIA256": lambda c: c.enc.startswith("ARIA") and c.bits == 256,
    "ARIAGCM": lambda c: c.enc == "ARIAGCM",
    "3DES": lambda c: c.enc == "3DES",
    "DES": lambda c: c.enc == "DES",
    "RC4": lambda c: c.enc == "RC4",
    "SEED": lambda c: c.enc == "SEED",
    "IDEA": lambda c: c.enc == "IDEA",
    "MD5": lambda c: c.mac == "MD5",
    "SHA1": lambda c: c.mac == "SHA1",
    "SHA": lambda c: c.mac == "SHA1",
    "SHA256": lambda c: c.mac == "SHA256",
    "SHA384": lambda c: c.mac == "SHA384",
    "TLSv1.2": lambda c: c.version == "TLSv1.2",
    "TLSv1.0": lambda c: c.version == "TLSv1",
    "TLSv1": lambda c: c.version == "TLSv1",
    "SSLv3": lambda c: c.version == "SSLv3",
}

DEFAULT_RULE = "ALL:!COMPLEMENTOFDEFAULT:!eNULL"
"""What ``DEFAULT`` expands to in OpenSSL 1.1.0 and later."""

_SEPARATORS = re.compile(r"[:, ;]+")
_SECLEVEL = re.compile(r"^@SECLEVEL=(\d)$")


@dataclass(frozen=True, kw_only=True)
class Selection:
    """What a cipher string selects."""

    ciphers: tuple[Cipher, ...]
    unknown: tuple[str, ...]
    """Words that name no alias or cipher (OpenSSL skips them silently)."""
    seclevel: int | None
    """The ``@SECLEVEL`` the string sets, if any."""

    def names(self) -> frozenset[str]:
        return frozenset(c.name for c in self.ciphers)


def _matches(word: str) -> list[Cipher] | None:
    parts = word.split("+")
    chosen: list[Cipher] | None = None
    for part in parts:
        if part in _BY_NAME:
            group = [_BY_NAME[part]]
        elif part in _ALIASES:
            predicate = _ALIASES[part]
            group = [c for c in CIPHERS if predicate(c)]  # type: ignore[operator]
        else:
            return None
        chosen = group if chosen is None else [c for c in chosen if c in group]
    return chosen


def _allowed_at(cipher: Cipher, level: int) -> bool:
    # ``SSL_CTX_set_security_level``: level 1 needs 80 bits, 2 needs 112 and no RC4, 3 needs
    # 128 bits and forward secrecy (no RSA key transport, no plain PSK).
    minimum = {0: 0, 1: 80, 2: 112, 3: 128, 4: 192, 5: 256}[min(level, 5)]
    if cipher.enc != "None" and cipher.bits < minimum:
        return False
    if level >= 2 and cipher.enc == "RC4":
        return False
    return not (level >= 3 and cipher.kx in {"RSA", "PSK", "RSAPSK"})


def evaluate(cipher_string: str, *, default_seclevel: int = 0) -> Selection:
    """Run ``cipher_string`` as OpenSSL would and return the suites it selects.

    ``default_seclevel`` applies when the string sets no ``@SECLEVEL`` (OpenSSL's built-in
    default is 1; Debian's configuration sets 2).

    >>> sorted(evaluate("ECDHE+AESGCM:!ECDSA").names())[:1]
    ['ECDHE-RSA-AES128-GCM-SHA256']
    """
    active: list[Cipher] = []
    killed: set[str] = set()
    unknown: list[str] = []
    seclevel: int | None = None
    # "@" starts a command even without a separator before it ("DEFAULT@SECLEVEL=2").
    text = re.sub(r"(?<=[^:, ;])@", ":@", cipher_string.strip())
    words = [w for w in _SEPARATORS.split(text) if w]
    expanded: list[str] = []
    if words and words[0] == "DEFAULT":
        # OpenSSL expands DEFAULT only at the start of the string; elsewhere it matches nothing.
        expanded.extend(_SEPARATORS.split(DEFAULT_RULE))
        words = words[1:]
    expanded.extend(words)
    for word in expanded:
        level = _SECLEVEL.match(word)
        if level:
            seclevel = int(level.group(1))
            continue
        if word == "@STRENGTH":
            active.sort(key=lambda c: -c.bits)
            continue
        op = word[0] if word[0] in "!-+" else ""
        body = word[1:] if op else word
        group = _matches(body)
        if group is None:
            unknown.append(word)
            continue
        if op == "!":
            killed.update(c.name for c in group)
            active = [c for c in active if c.name not in killed]
        elif op == "-":
            names = {c.name for c in group}
            active = [c for c in active if c.name not in names]
        elif op == "+":
            names = {c.name for c in group}
            active = [c for c in active if c.name not in names] + [
                c for c in active if c.name in names
            ]
        else:
            present = {c.name for c in active}
            active += [c for c in group if c.name not in killed and c.name not in present]
    level_used = seclevel if seclevel is not None else default_seclevel
    active = [c for c in active if _allowed_at(c, level_used)]
    return Selection(ciphers=tuple(active), unknown=tuple(unknown), seclevel=seclevel)

"""A stand-in for the ``oqs`` module (liboqs-python), for machines without the C liboqs.

(Where liboqs is installed, ``test_pqc_liboqs_real.py`` and the contract, KAT, interop and
agreement suites run the real thing; this stand-in keeps the adapter's mapping covered
everywhere else.)

It is NOT liboqs: it mimics the liboqs-python API surface that ``pqc._liboqs`` adapts, with
pqcrypto doing the arithmetic, so that the adapter's mapping can be checked here:

- ``encap_secret`` returns ``(ciphertext, shared_secret)`` (pyca returns the reverse);
- inputs go through ``ctypes.create_string_buffer(data, size)`` semantics, which zero-pad a
  short input silently and raise ValueError for a long one, so length checks must be the
  adapter's;
- failures are ``RuntimeError`` and ``verify`` returns a bool, as in liboqs-python;
- no modulus check on ML-KEM keys (the adapter must do it), and no seeded key generation
  (``length_keypair_seed`` = 0), which the adapter must report as unsupported.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from pqcrypto.kem import hqc_128, ml_kem_768
from pqcrypto.sign import ml_dsa_44

# liboqs (from 0.14) calls HQC-128 "HQC-1"; the adapter lists it as HQC-128.
_KEMS: dict[str, Any] = {"ML-KEM-768": ml_kem_768, "HQC-1": hqc_128}
_SIGS: dict[str, Any] = {"ML-DSA-44": ml_dsa_44}
_LEVELS = {"ML-KEM-768": 3, "HQC-1": 1, "ML-DSA-44": 2}

calls: list[str] = []  # what the adapter asked for, for assertions


def _buffer(data: bytes, size: int) -> bytes:
    """ctypes.create_string_buffer(data, size) followed by bytes()."""
    if len(data) > size:
        raise ValueError("byte string too long")
    return bytes(data) + b"\x00" * (size - len(data))


class MechanismNotSupportedError(Exception):
    pass


class KeyEncapsulation:
    def __init__(self, alg_name: str, secret_key: bytes | None = None) -> None:
        if alg_name not in _KEMS:
            raise MechanismNotSupportedError(alg_name)
        self._mod = _KEMS[alg_name]
        self.alg_name = alg_name
        self.details = {
            "name": alg_name,
            "version": "stand-in",
            "claimed_nist_level": _LEVELS[alg_name],
            "is_ind_cca": True,
            "length_public_key": self._mod.PUBLIC_KEY_SIZE,
            "length_secret_key": self._mod.SECRET_KEY_SIZE,
            "length_ciphertext": self._mod.CIPHERTEXT_SIZE,
            "length_shared_secret": self._mod.SHARED_SECRET_SIZE,
            "length_keypair_seed": 0,
        }
        self.secret_key = _buffer(secret_key, self._mod.SECRET_KEY_SIZE) if secret_key else b""

    def __enter__(self) -> KeyEncapsulation:
        return self

    def __exit__(
        self, a: type[BaseException] | None, b: BaseException | None, c: TracebackType | None
    ) -> None:
        self.secret_key = b""

    def generate_keypair(self) -> bytes:
        calls.append(f"keypair:{self.alg_name}")
        public_key, self.secret_key = self._mod.keygen()
        return bytes(public_key)

    def generate_keypair_seed(self, seed: bytes) -> bytes:
        raise RuntimeError(f"Key generation with seed is not supported. Got {self.alg_name}.")

    def export_secret_key(self) -> bytes:
        return bytes(self.secret_key)

    def encap_secret(self, public_key: bytes) -> tuple[bytes, bytes]:
        calls.append(f"encaps:{self.alg_name}")
        try:
            ciphertext, shared_secret = self._mod.encaps(
                _buffer(public_key, self._mod.PUBLIC_KEY_SIZE)
            )
        except ValueError:
            raise RuntimeError("Can not encapsulate secret") from None
        return bytes(ciphertext), bytes(shared_secret)  # liboqs order: (ct, ss)

    def decap_secret(self, ciphertext: bytes) -> bytes:
        calls.append(f"decaps:{self.alg_name}")
        try:
            return bytes(
                self._mod.decaps(self.secret_key, _buffer(ciphertext, self._mod.CIPHERTEXT_SIZE))
            )
        except ValueError:
            raise RuntimeError("Can not decapsulate secret") from None


class Signature:
    def __init__(self, alg_name: str, secret_key: bytes | None = None) -> None:
        if alg_name not in _SIGS:
            raise MechanismNotSupportedError(alg_name)
        self._mod = _SIGS[alg_name]
        self.details = {
            "name": alg_name,
            "version": "stand-in",
            "claimed_nist_level": _LEVELS[alg_name],
            "sig_with_ctx_support": True,
            "length_public_key": self._mod.PUBLIC_KEY_SIZE,
            "length_secret_key": self._mod.SECRET_KEY_SIZE,
            "length_signature": self._mod.SIGNATURE_SIZE,
        }
        self.secret_key = _buffer(secret_key, self._mod.SECRET_KEY_SIZE) if secret_key else b""

    def __enter__(self) -> Signature:
        return self

    def __exit__(
        self, a: type[BaseException] | None, b: BaseException | None, c: TracebackType | None
    ) -> None:
        self.secret_key = b""

    def generate_keypair(self) -> bytes:
        public_key, self.secret_key = self._mod.keygen()
        return bytes(public_key)

    def export_secret_key(self) -> bytes:
        return bytes(self.secret_key)

    def sign(self, message: bytes) -> bytes:
        return bytes(self._mod.sign(self.secret_key, message))

    def sign_with_ctx_str(self, message: bytes, context: bytes) -> bytes:
        return bytes(self._mod.sign(self.secret_key, message, context))

    def verify(self, message: bytes, signature: bytes, public_key: bytes) -> bool:
        try:
            self._mod.verify(public_key, message, signature)
        except ValueError:
            return False
        return True

    def verify_with_ctx_str(
        self, message: bytes, signature: bytes, context: bytes, public_key: bytes
    ) -> bool:
        try:
            self._mod.verify(public_key, message, signature, context)
        except ValueError:
            return False
        return True


def get_enabled_kem_mechanisms() -> tuple[str, ...]:
    return tuple(_KEMS)


def get_enabled_sig_mechanisms() -> tuple[str, ...]:
    return (*_SIGS, "SLH_DSA_PURE_SHA2_128S")  # listed, like liboqs's own spelling


def oqs_version() -> str:
    return "0.0.0-stand-in"


def oqs_python_version() -> str:
    return "0.0.0-stand-in"

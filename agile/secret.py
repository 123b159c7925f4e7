"""``SecretBytes``: key material that leaves the low layer, wrapped so it does not leak by accident.

- ``repr``/``str``/``format`` show only the length: ``<SecretBytes 32 bytes>``.
- Equality is constant-time (:func:`hmac.compare_digest`) and only against another
  ``SecretBytes``; there is no hash (a hash of a key would be a fingerprint of it).
- Pickling and copying are refused, so a key is not written to disk or a queue by accident.
- The raw bytes come out only through an explicit call: :meth:`SecretBytes.reveal`.
"""

from __future__ import annotations

import hmac
from typing import Any, NoReturn


class SecretBytes:
    """An immutable byte string that refuses to show itself.

    >>> key = SecretBytes(bytes(32))
    >>> key
    <SecretBytes 32 bytes>
    >>> len(key.reveal())
    32
    """

    __slots__ = ("_value",)

    _value: bytes

    def __init__(self, value: bytes | bytearray | memoryview) -> None:
        if value.__class__ is not bytes:  # bytes itself is immutable: kept as it is
            if not isinstance(value, bytes | bytearray | memoryview):
                raise TypeError(f"SecretBytes wraps bytes, not {type(value).__name__}")
            value = bytes(value)
        object.__setattr__(self, "_value", value)

    def reveal(self) -> bytes:
        """Return the raw bytes. Every call site is a place where the key leaves its wrapper."""
        return self._value

    def __len__(self) -> int:
        return len(self._value)

    def __repr__(self) -> str:
        return f"<SecretBytes {len(self._value)} bytes>"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretBytes):
            return NotImplemented
        return hmac.compare_digest(self._value, other._value)

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    __hash__ = None  # type: ignore[assignment]

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("SecretBytes is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("SecretBytes is immutable")

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("SecretBytes cannot be pickled or copied: key material stays in memory")

    def __copy__(self) -> NoReturn:
        raise TypeError("SecretBytes cannot be copied; share the object instead")

    def __deepcopy__(self, memo: Any) -> NoReturn:
        raise TypeError("SecretBytes cannot be copied; share the object instead")

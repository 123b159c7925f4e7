"""ETSI GS QKD 014 v1.1.1 data formats: parsing and validation, both directions.

The standard (section 6) defines five JSON objects - Status, Key request, Key IDs, Key
container, Error - exchanged over three paths under ``/api/v1/keys/{SAE_ID}/``. This module
turns them into Python values and refuses anything that does not match, so the client and
the server validate with the same rules. A key object may carry the project's extension
``"key_extension": {"relay_path": ["A", "B", ...]}``, the KME nodes the key passed through
(:data:`RELAY_PATH`); other extension fields are ignored, as the standard allows.

- requests (server side): :func:`parse_key_request`, :func:`parse_key_ids`, which raise
  :class:`RequestRejected` carrying the HTTP status and the standard's Error object;
- responses (client side): :func:`parse_status`, :func:`parse_key_container`, which raise
  :class:`qkd.InvalidResponse`.

Hazmat: keys are plain bytes; never log the documents this module builds.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qkd.delivery.keysource import InvalidResponse, KeyStatus, QkdKey, relay_path_problem

__all__ = [
    "API_PREFIX",
    "RELAY_PATH",
    "KeyRequest",
    "RequestRejected",
    "encode_key_container",
    "error_body",
    "parse_key_container",
    "parse_key_ids",
    "parse_key_request",
    "parse_status",
]

API_PREFIX = "/api/v1/keys/"
RELAY_PATH = "relay_path"
"""The key_extension field naming a key's KME nodes, master's KME first, slave's KME last."""

# Integers in requests are bounded far below anything a KME could honour, so that a huge
# number is refused as a value rather than becoming an arbitrary-precision computation.
_INT_LIMIT = 2**31 - 1


class RequestRejected(Exception):
    """A request the KME refuses: ``status`` (400, 401, 503) and the Error object."""

    def __init__(self, status: int, message: str, details: Sequence[dict[str, Any]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = list(details)

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.details)


def error_body(message: str, details: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The standard's Error object: ``message`` and, when there are any, ``details``."""
    document: dict[str, Any] = {"message": message}
    if details:
        document["details"] = list(details)
    return document


@dataclass(frozen=True, kw_only=True, slots=True)
class KeyRequest:
    """A validated Key request (POST body or GET query of enc_keys)."""

    number: int = 1
    size: int | None = None
    additional_slave_sae_ids: tuple[str, ...] = ()
    extension_mandatory: tuple[dict[str, Any], ...] = field(default=())
    extension_optional: tuple[dict[str, Any], ...] = field(default=())


def _bad(message: str, **detail: Any) -> RequestRejected:
    return RequestRejected(400, message, [detail] if detail else [])


def _parse_int(name: str, value: Any, *, from_query: bool) -> int:
    if from_query and isinstance(value, str):
        text = value.strip()
        if not text or not (text.isdigit() or (text[0] in "+-" and text[1:].isdigit())):
            raise _bad(f"{name} must be an integer", **{name: value})
        if len(text) > 12:
            raise _bad(f"{name} is out of range", **{name: value})
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"{name} must be an integer", **{name: repr(value)})
    if not -_INT_LIMIT <= value <= _INT_LIMIT:
        raise _bad(f"{name} is out of range", **{name: str(value)})
    return value


def _parse_object_list(name: str, value: Any) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _bad(f"{name} must be an array of JSON objects", **{name: repr(value)[:80]})
    return tuple(value)


def parse_key_request(document: Any, *, from_query: bool = False) -> KeyRequest:
    """Validate the Key request object (or the GET query parameters ``number``, ``size``).

    Checks only the shape; limits (sizes, counts) are the KME's to apply.
    """
    if document is None:
        document = {}
    if not isinstance(document, Mapping):
        raise _bad("the Key request must be a JSON object")
    allowed = (
        {"number", "size"}
        if from_query
        else {
            "number",
            "size",
            "additional_slave_SAE_IDs",
            "extension_mandatory",
            "extension_optional",
        }
    )
    unknown = sorted(set(document) - allowed)
    if unknown:
        raise _bad("unknown field in the Key request", fields=unknown)
    number = _parse_int("number", document.get("number", 1), from_query=from_query)
    size = (
        _parse_int("size", document["size"], from_query=from_query)
        if "size" in document and document["size"] is not None
        else None
    )
    slaves: tuple[str, ...] = ()
    if "additional_slave_SAE_IDs" in document:
        raw = document["additional_slave_SAE_IDs"]
        if not isinstance(raw, list) or not all(isinstance(s, str) and s for s in raw):
            raise _bad(
                "additional_slave_SAE_IDs must be an array of SAE ID strings",
                additional_slave_SAE_IDs=repr(raw)[:80],
            )
        slaves = tuple(raw)
    mandatory = _parse_object_list("extension_mandatory", document.get("extension_mandatory", []))
    optional = _parse_object_list("extension_optional", document.get("extension_optional", []))
    return KeyRequest(
        number=number,
        size=size,
        additional_slave_sae_ids=slaves,
        extension_mandatory=mandatory,
        extension_optional=optional,
    )


def _canonical_uuid(value: Any) -> str | None:
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def parse_key_ids(document: Any, *, from_query: bool = False) -> list[str]:
    """Validate the Key IDs object (or GET ``key_ID`` parameters) into canonical UUIDs.

    Refuses an empty list and a key_ID listed twice (400).
    """
    if from_query:
        raw_ids = document if isinstance(document, list) else [document]
        entries: list[Any] = [{"key_ID": k} for k in raw_ids]
    else:
        if not isinstance(document, Mapping):
            raise _bad("the Key IDs object must be a JSON object")
        unknown = sorted(set(document) - {"key_IDs", "key_IDs_extension"})
        if unknown:
            raise _bad("unknown field in the Key IDs object", fields=unknown)
        entries = document.get("key_IDs")  # type: ignore[assignment]
        if not isinstance(entries, list):
            raise _bad("key_IDs must be an array of objects with a key_ID")
    if not entries:
        raise _bad("key_IDs is empty: give at least one key_ID")
    key_ids: list[str] = []
    for entry in entries:
        if not isinstance(entry, Mapping) or set(entry) - {"key_ID", "key_ID_extension"}:
            raise _bad("each key_IDs entry must be an object {key_ID, key_ID_extension?}")
        canonical = _canonical_uuid(entry.get("key_ID"))
        if canonical is None:
            raise _bad("key_ID must be a UUID string", key_ID=repr(entry.get("key_ID"))[:80])
        key_ids.append(canonical)
    if len(set(key_ids)) != len(key_ids):
        twice = sorted(k for k, n in Counter(key_ids).items() if n > 1)
        raise _bad("a key_ID is listed twice in one request", key_IDs=twice)
    return key_ids


def encode_key_container(
    keys: Sequence[tuple[str, bytes]], *, relay_path: Sequence[str] | None = None
) -> dict[str, Any]:
    """The Key container object for ``(key_ID, key)`` pairs.

    With ``relay_path`` (the KME nodes from the master SAE's KME to the slave SAE's KME),
    every key object carries ``"key_extension": {"relay_path": [...]}``, the project's
    extension (docs/kme.md, "The relay path of a key").
    """
    if relay_path is None:
        return {
            "keys": [
                {"key_ID": key_id, "key": base64.b64encode(key).decode("ascii")}
                for key_id, key in keys
            ]
        }
    problem = relay_path_problem(relay_path)
    if problem is not None:
        raise ValueError(problem)
    path = list(relay_path)
    return {
        "keys": [
            {
                "key_ID": key_id,
                "key": base64.b64encode(key).decode("ascii"),
                "key_extension": {RELAY_PATH: list(path)},
            }
            for key_id, key in keys
        ]
    }


def _parse_relay_path(entry: Mapping[str, Any], index: int) -> tuple[str, ...] | None:
    """The ``key_extension.relay_path`` of key object ``index``, or ``None`` without one.

    ETSI GS QKD 014 leaves ``key_extension`` to the KME; fields other than ``relay_path``
    are ignored here (they stay the KME's business), but a ``relay_path`` must be valid.
    """
    extension = entry.get("key_extension")
    if extension is None:
        return None
    if not isinstance(extension, Mapping):
        raise InvalidResponse(f"keys[{index}].key_extension is not a JSON object")
    if RELAY_PATH not in extension:
        return None
    path = extension[RELAY_PATH]
    problem = relay_path_problem(path, f"keys[{index}].key_extension.{RELAY_PATH}")
    if problem is not None:
        raise InvalidResponse(problem)
    return tuple(path)


# -------------------------------------------------------------------------- responses


_STATUS_FIELDS: dict[str, type] = {
    "source_KME_ID": str,
    "target_KME_ID": str,
    "master_SAE_ID": str,
    "slave_SAE_ID": str,
    "key_size": int,
    "stored_key_count": int,
    "max_key_count": int,
    "max_key_per_request": int,
    "max_key_size": int,
    "min_key_size": int,
    "max_SAE_ID_count": int,
}


def parse_status(document: Any) -> KeyStatus:
    """Validate a Status object from a KME."""
    if not isinstance(document, Mapping):
        raise InvalidResponse("Status is not a JSON object")
    values: dict[str, Any] = {}
    for name, kind in _STATUS_FIELDS.items():
        value = document.get(name)
        if value is None:
            raise InvalidResponse(f"Status lacks the required field {name}")
        if kind is int and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise InvalidResponse(f"Status field {name} is not a non-negative integer")
        if kind is str and not isinstance(value, str):
            raise InvalidResponse(f"Status field {name} is not a string")
        values[name] = value
    extension = document.get("status_extension")
    if extension is not None and not isinstance(extension, dict):
        raise InvalidResponse("Status field status_extension is not an object")
    return KeyStatus(
        source_kme_id=values["source_KME_ID"],
        target_kme_id=values["target_KME_ID"],
        master_sae_id=values["master_SAE_ID"],
        slave_sae_id=values["slave_SAE_ID"],
        key_size=values["key_size"],
        stored_key_count=values["stored_key_count"],
        max_key_count=values["max_key_count"],
        max_key_per_request=values["max_key_per_request"],
        max_key_size=values["max_key_size"],
        min_key_size=values["min_key_size"],
        max_sae_id_count=values["max_SAE_ID_count"],
        status_extension=extension,
    )


def parse_key_container(
    document: Any,
    *,
    size_bits: int | None = None,
    number: int | None = None,
    key_ids: Sequence[str] | None = None,
) -> list[QkdKey]:
    """Validate a Key container from a KME.

    ``number``/``size_bits``: the enc_keys request (exactly ``number`` keys of ``size_bits``).
    ``key_ids``: the dec_keys request (exactly those key IDs, in any order, returned in the
    order asked). Raises :class:`qkd.InvalidResponse` on any mismatch.
    """
    if not isinstance(document, Mapping):
        raise InvalidResponse("Key container is not a JSON object")
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise InvalidResponse("Key container lacks the keys array")
    keys: list[QkdKey] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise InvalidResponse(f"keys[{index}] is not an object")
        key_id = _canonical_uuid(entry.get("key_ID"))
        if key_id is None:
            raise InvalidResponse(f"keys[{index}].key_ID is missing or not a UUID")
        encoded = entry.get("key")
        if not isinstance(encoded, str):
            raise InvalidResponse(f"keys[{index}].key is missing or not a string")
        try:
            material = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidResponse(f"keys[{index}].key is not valid base64") from exc
        if not material:
            raise InvalidResponse(f"keys[{index}].key is empty")
        if size_bits is not None and 8 * len(material) != size_bits:
            raise InvalidResponse(
                f"keys[{index}].key has {8 * len(material)} bits, {size_bits} were asked"
            )
        keys.append(QkdKey(key_id=key_id, key=material, relay_path=_parse_relay_path(entry, index)))
    if len({k.key_id for k in keys}) != len(keys):
        raise InvalidResponse("Key container lists the same key_ID twice")
    if number is not None and len(keys) != number:
        raise InvalidResponse(f"Key container holds {len(keys)} keys, {number} were asked")
    if key_ids is not None:
        wanted = [str(uuid.UUID(k)) for k in key_ids]
        by_id = {k.key_id: k for k in keys}
        if set(by_id) != set(wanted) or len(keys) != len(wanted):
            raise InvalidResponse("Key container does not hold exactly the key_IDs asked for")
        keys = [by_id[k] for k in wanted]
    return keys

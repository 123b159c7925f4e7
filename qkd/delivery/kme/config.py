"""Configuration of a local KME pair (``agile kme serve --config FILE``).

A TOML or JSON file; relative paths are resolved against the file's directory::

    ca = "certs/ca.pem"

    [kme.a]
    id = "KME-A"
    listen = "127.0.0.1:8443"
    cert = "certs/kme-a.pem"
    key = "certs/kme-a.key"
    store = "sqlite:state/kme-a.sqlite"   # or "postgresql://..." (replicas); a bare path
                                          # is a SQLite file

    [kme.b]
    id = "KME-B"
    listen = "127.0.0.1:8444"
    cert = "certs/kme-b.pem"
    key = "certs/kme-b.key"
    store = "state/kme-b.sqlite"

    [[link]]
    name = "a-b"
    saes_a = ["sae-a"]          # SAEs attached to KME A on this link
    saes_b = ["sae-b"]          # SAEs attached to KME B
    source = "ideal"            # "ideal" (OS CSPRNG) or "simulated" (qkd.simulate)
    rate_bps = 0                # key bits per second, 0 = unmetered
    key_size = 256
    min_key_size = 64
    max_key_size = 8192
    max_key_count = 10000       # ready keys kept per direction
    max_key_per_request = 128
    key_max_age_s = 86400       # ready keys older than this are deleted

Every SAE ID pair (one at A, one at B) may appear on one link only, so a request names its
link unambiguously.

A ``postgresql://`` store keeps the KME's pool in PostgreSQL, in a schema named after the KME
ID, so both KMEs may give the same URL. Then several processes may serve the same
configuration (replicas, each on its own listen address): they share the pools, and one of
them at a time runs the link feeders (docs/kme.md, "Scale-out store"). Both KMEs of a pair
use the same kind of store.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qkd._errors import QKDError
from qkd.delivery.store import POSTGRES_PREFIXES, SQLITE_PREFIX

__all__ = [
    "ConfigError",
    "KmeSettings",
    "LinkSettings",
    "PairConfig",
    "load_config",
    "quick_config",
]


class ConfigError(QKDError):
    """The KME configuration is invalid; the message names the file and field."""


@dataclass(frozen=True, kw_only=True, slots=True)
class KmeSettings:
    kme_id: str
    host: str
    port: int
    cert: Path
    key: Path
    store: Path
    # A postgresql:// URL: the pool lives in PostgreSQL and ``store`` is unused (Path()).
    store_url: str | None = None

    @property
    def store_spec(self) -> str:
        """The store as :func:`qkd.delivery.store.open_store` takes it."""
        return self.store_url if self.store_url is not None else f"sqlite:{self.store}"


@dataclass(frozen=True, kw_only=True, slots=True)
class LinkSettings:
    name: str
    saes_a: tuple[str, ...]
    saes_b: tuple[str, ...]
    source: str = "ideal"
    rate_bps: float = 0.0
    key_size: int = 256
    min_key_size: int = 64
    max_key_size: int = 8192
    max_key_count: int = 10_000
    max_key_per_request: int = 128
    key_max_age_s: float = 86_400.0
    block_units: int = 1024
    simulation: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class PairConfig:
    ca: Path
    a: KmeSettings
    b: KmeSettings
    links: tuple[LinkSettings, ...]


def parse_listen(text: str, where: str) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port); port 0 picks a free port."""
    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"{where}: listen address {text!r} must be HOST:PORT")
    return host.strip("[]"), int(port)


class _Reader:
    def __init__(self, source: str, base: Path) -> None:
        self.source = source
        self.base = base

    def fail(self, where: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {where}: {message}")

    def table(self, doc: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any]:
        value = doc.get(name)
        if not isinstance(value, Mapping):
            raise self.fail(f"{where}{name}", "missing table")
        return value

    def string(self, doc: Mapping[str, Any], name: str, where: str) -> str:
        value = doc.get(name)
        if not isinstance(value, str) or not value:
            raise self.fail(f"{where}{name}", "must be a non-empty string")
        return value

    def path(self, doc: Mapping[str, Any], name: str, where: str) -> Path:
        return self.resolve(self.string(doc, name, where))

    def resolve(self, text: str) -> Path:
        path = Path(text).expanduser()
        return path if path.is_absolute() else self.base / path

    def store(self, doc: Mapping[str, Any], where: str) -> tuple[Path, str | None]:
        """``store``: (SQLite path, None) or (Path(), PostgreSQL URL)."""
        text = self.string(doc, "store", where)
        if text.startswith(POSTGRES_PREFIXES):
            return Path(), text
        if text.startswith(SQLITE_PREFIX):
            text = text[len(SQLITE_PREFIX) :]
            if not text:
                raise self.fail(f"{where}store", "sqlite: needs a path, as in sqlite:kme-a.sqlite")
        elif ":" in text.split("/", 1)[0] and len(text.split(":", 1)[0]) > 1:
            scheme = text.split(":", 1)[0]
            raise self.fail(
                f"{where}store",
                f"unknown store kind {scheme!r}: give sqlite:PATH, a path, or postgresql://...",
            )
        return self.resolve(text), None

    def number(
        self, doc: Mapping[str, Any], name: str, where: str, default: float, *, integer: bool
    ) -> Any:
        value = doc.get(name, default)
        ok = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok or value < 0:
            kind = "a non-negative integer" if integer else "a non-negative number"
            raise self.fail(f"{where}{name}", f"must be {kind}")
        return value


def _kme(reader: _Reader, doc: Mapping[str, Any], end: str) -> KmeSettings:
    where = f"kme.{end}."
    table = reader.table(reader.table(doc, "kme", ""), end, "kme.")
    host, port = parse_listen(
        reader.string(table, "listen", where), f"{reader.source}: {where}listen"
    )
    store, store_url = reader.store(table, where)
    return KmeSettings(
        kme_id=reader.string(table, "id", where),
        host=host,
        port=port,
        cert=reader.path(table, "cert", where),
        key=reader.path(table, "key", where),
        store=store,
        store_url=store_url,
    )


def _link(reader: _Reader, doc: Mapping[str, Any], index: int) -> LinkSettings:
    where = f"link[{index}]."
    known = set(LinkSettings.__dataclass_fields__)
    unknown = sorted(set(doc) - known)
    if unknown:
        raise reader.fail(f"{where}{unknown[0]}", f"unknown setting; known: {sorted(known)}")
    saes: dict[str, tuple[str, ...]] = {}
    for end in ("saes_a", "saes_b"):
        value = doc.get(end)
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(s, str) and s for s in value)
        ):
            raise reader.fail(f"{where}{end}", "must be a non-empty list of SAE ID strings")
        saes[end] = tuple(value)
    source = doc.get("source", "ideal")
    if source not in ("ideal", "simulated"):
        raise reader.fail(f"{where}source", "must be 'ideal' or 'simulated'")
    sizes = {
        name: reader.number(doc, name, where, default, integer=True)
        for name, default in (
            ("key_size", 256),
            ("min_key_size", 64),
            ("max_key_size", 8192),
            ("max_key_count", 10_000),
            ("max_key_per_request", 128),
            ("block_units", 1024),
        )
    }
    for name in ("key_size", "min_key_size", "max_key_size"):
        if sizes[name] == 0 or sizes[name] % 8:
            raise reader.fail(f"{where}{name}", "must be a positive multiple of 8")
    if not sizes["min_key_size"] <= sizes["key_size"] <= sizes["max_key_size"]:
        raise reader.fail(f"{where}key_size", "must lie between min_key_size and max_key_size")
    for name in ("max_key_count", "max_key_per_request", "block_units"):
        if sizes[name] == 0:
            raise reader.fail(f"{where}{name}", "must be at least 1")
    max_age = float(reader.number(doc, "key_max_age_s", where, 86_400.0, integer=False))
    if max_age <= 0:
        raise reader.fail(f"{where}key_max_age_s", "must be a positive number of seconds")
    simulation = doc.get("simulation", {})
    if not isinstance(simulation, Mapping):
        raise reader.fail(f"{where}simulation", "must be a table of qkd.simulate arguments")
    return LinkSettings(
        name=str(doc.get("name", f"link-{index}")),
        saes_a=saes["saes_a"],
        saes_b=saes["saes_b"],
        source=source,
        rate_bps=float(reader.number(doc, "rate_bps", where, 0.0, integer=False)),
        key_max_age_s=max_age,
        simulation=dict(simulation),
        **sizes,
    )


def build_config(doc: Mapping[str, Any], *, source: str, base: Path) -> PairConfig:
    """Validate a configuration document (already parsed from TOML/JSON)."""
    reader = _Reader(source, base)
    a, b = _kme(reader, doc, "a"), _kme(reader, doc, "b")
    if a.kme_id == b.kme_id:
        raise reader.fail("kme.b.id", "the two KMEs need different IDs")
    if (a.store_url is None) != (b.store_url is None):
        raise reader.fail("kme.b.store", "both KMEs of a pair use SQLite, or both use PostgreSQL")
    if a.store_url is None and a.store.resolve() == b.store.resolve():
        raise reader.fail("kme.b.store", "each KME needs its own store file")
    raw_links = doc.get("link")
    if not isinstance(raw_links, list) or not raw_links:
        raise reader.fail("link", "give at least one [[link]] table")
    links = tuple(
        _link(reader, entry if isinstance(entry, Mapping) else {}, i)
        for i, entry in enumerate(raw_links)
    )
    seen: dict[tuple[str, str], str] = {}
    names: set[str] = set()
    for i, link in enumerate(links):
        if link.name in names:
            raise reader.fail(f"link[{i}].name", f"link name {link.name!r} is used twice")
        names.add(link.name)
        for sae_a in link.saes_a:
            for sae_b in link.saes_b:
                if sae_a == sae_b:
                    raise reader.fail(f"link[{i}]", f"SAE {sae_a!r} is at both ends")
                if (sae_a, sae_b) in seen:
                    raise reader.fail(
                        f"link[{i}]",
                        f"SAE pair {sae_a}/{sae_b} is already on link {seen[(sae_a, sae_b)]}",
                    )
                seen[(sae_a, sae_b)] = link.name
    return PairConfig(ca=reader.path(doc, "ca", ""), a=a, b=b, links=links)


def load_config(path: str | Path) -> PairConfig:
    """Read and validate a TOML (.toml) or JSON (.json) configuration file."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration ({exc.strerror})") from exc
    try:
        if path.suffix.lower() == ".json":
            doc = json.loads(text)
        else:
            doc = tomllib.loads(text.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.') or 'TOML'}: {exc}") from exc
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{path}: the configuration must be a table/object")
    return build_config(doc, source=str(path), base=path.resolve().parent)


def quick_config(
    certs: Path, listen_a: str, listen_b: str, state: Path | None = None
) -> PairConfig:
    """The two-command quick start: ``agile kme certs`` output and two listen addresses."""
    state = state or certs
    doc = {
        "ca": str(certs / "ca.pem"),
        "kme": {
            "a": {
                "id": "KME-A",
                "listen": listen_a,
                "cert": str(certs / "kme-a.pem"),
                "key": str(certs / "kme-a.key"),
                "store": str(state / "kme-a.sqlite"),
            },
            "b": {
                "id": "KME-B",
                "listen": listen_b,
                "cert": str(certs / "kme-b.pem"),
                "key": str(certs / "kme-b.key"),
                "store": str(state / "kme-b.sqlite"),
            },
        },
        "link": [{"name": "a-b", "saes_a": ["sae-a"], "saes_b": ["sae-b"]}],
    }
    return build_config(doc, source="command line", base=Path.cwd())

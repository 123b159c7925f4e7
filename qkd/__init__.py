"""QKD links, post-processing and key delivery: the low ("hazmat") layer.

This package is easy to misuse: it takes explicit parameters, returns plain ``bytes`` and
small frozen dataclasses, and applies no policy. Applications should use ``agile``, which
wraps secrets and enforces policy.

Errors::

    QKDError
    ├── LinkConfigError      a link, source, channel or detector parameter is out of range
    ├── EveConfigError       an eavesdropper specification is malformed
    ├── KeySourceError       a key source could not deliver keys (qkd.delivery.keysource)
    │   ├── KMEError         a KME refused: .status, and the KME's .message and .details
    │   │   ├── KMEUnavailable   unreachable, timed out, or 503 after every retry
    │   │   │   └── KeyExhausted     the key pool cannot serve the request now
    │   │   └── KeyNotFound      a key_ID unknown, expired, delivered, or another pair's
    │   ├── InvalidRequest   the caller asked for what no KME can answer (also a ValueError)
    │   └── InvalidResponse  a KME's answer broke ETSI GS QKD 014 (base64, length, IDs ...)
    ├── KeyStoreError        the durable key store failed (qkd.delivery.store)
    ├── ConfigError          a KME pair configuration is invalid (qkd.delivery.kme)
    ├── NetworkFileError     a network file is invalid; .problems are located (qkd.network)
    ├── PlannerUnavailable   the planner's extra (networkx, scipy) is not installed
    ├── RelayError           a key-relay frame or link-key request refused (qkd.network.relay)
    │   ├── RelayDecodeError         malformed: truncated, extended, a bad field
    │   ├── RelayAuthenticationError the Wegman-Carter tag fails, or another link's frame
    │   └── LinkKeyError             link key exhausted, not held, or already used (a replay)
    ├── RepeaterConfigError  a repeater chain parameter is out of range (qkd.physics.repeater)
    └── ProtocolError        an unsupported protocol/sampler/attack, or a run too large

Key delivery (``qkd.KeySource``, ``qkd.SimulatedLink``, ``qkd.Etsi014Client``, the local
KME pair ``qkd.delivery.kme``): see docs/kme.md.
Simulation (``qkd.simulate``, ``qkd.rates``, ``qkd.physics.link``): see docs/qkd-simulation.md.

The package has four rooms; the names above are re-exported from them:

- ``qkd.physics``: link physics (link, protocols, Eve, simulation, decoy bounds, rates, report);
- ``qkd.postprocessing``: sifting, estimation, Cascade, verification, Toeplitz hashing, the
  finite-key length;
- ``qkd.delivery``: key sources, the ETSI GS QKD 014 client and KME pair, the durable store;
- ``qkd.network``: networks of links (model, planner). It may import the other three; they
  never import it.

``qkd.randomness`` (where a run's randomness comes from) serves physics and post-processing
alike and stays at the top, beside the exception root.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qkd._errors import QKDError
from qkd.delivery.keysource import (
    AsyncKeySource,
    AsyncSimulatedLinkSource,
    InvalidRequest,
    InvalidResponse,
    KeyExhausted,
    KeyMaterialSupplier,
    KeyNotFound,
    KeySource,
    KeySourceError,
    KeyStatus,
    KMEError,
    KMEUnavailable,
    QkdKey,
    SimulatedLink,
    SimulatedLinkSource,
    csprng_supplier,
)
from qkd.delivery.store import KeyStoreError
from qkd.physics import rates
from qkd.physics.eve import BeamSplitting, EveConfigError, InterceptResend, PhotonNumberSplitting
from qkd.physics.link import (
    PRESETS,
    DecoySource,
    Detector,
    FibreChannel,
    FreeSpaceChannel,
    Link,
    LinkConfigError,
    preset,
)
from qkd.physics.protocols import ProtocolError
from qkd.physics.report import EcReport, LinkReport, StageTimings
from qkd.physics.simulation import SimulationResult, simulate

__all__ = [
    "PRESETS",
    "AsyncEtsi014Client",
    "AsyncKeySource",
    "AsyncSimulatedLinkSource",
    "BeamSplitting",
    "ConfigError",
    "DecoySource",
    "Detector",
    "EcReport",
    "Etsi014Client",
    "EveConfigError",
    "FibreChannel",
    "FreeSpaceChannel",
    "InterceptResend",
    "InvalidRequest",
    "InvalidResponse",
    "KMEError",
    "KMEUnavailable",
    "KeyExhausted",
    "KeyMaterialSupplier",
    "KeyNotFound",
    "KeySource",
    "KeySourceError",
    "KeyStatus",
    "KeyStoreError",
    "Link",
    "LinkConfigError",
    "LinkReport",
    "PhotonNumberSplitting",
    "ProtocolError",
    "QKDError",
    "QkdKey",
    "SimulatedLink",
    "SimulatedLinkSource",
    "SimulationResult",
    "StageTimings",
    "csprng_supplier",
    "preset",
    "rates",
    "simulate",
]


if TYPE_CHECKING:
    from qkd.delivery.etsi014.client import AsyncEtsi014Client, Etsi014Client
    from qkd.delivery.kme.config import ConfigError

# The ETSI 014 client needs httpx (the "server" extra) and the KME configuration error lives
# with the KME pair: both load on first use, so `import qkd` works without the extra.
_LAZY = {
    "Etsi014Client": "qkd.delivery.etsi014.client",
    "AsyncEtsi014Client": "qkd.delivery.etsi014.client",
    "ConfigError": "qkd.delivery.kme.config",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'qkd' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)

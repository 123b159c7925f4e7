"""Policies: which algorithms, QKD link, combiner and authentication a handshake may use.

``load_policy`` (also ``agile.load_policy``) reads a file or a built-in name; ``Policy`` is the
validated, frozen result; ``agile.PolicyError`` carries every problem found. See docs/policy.md.
"""

from __future__ import annotations

from agile.policy.loader import (
    load_policy,
    load_policy_with_warnings,
    parse_policy,
    policy_from_dict,
)
from agile.policy.model import (
    KDF,
    QKD,
    SCHEMA_VERSION,
    Auth,
    Etsi014,
    Policy,
    Rules,
    Session,
    SimulatedLink,
    Suite,
    Sunset,
    json_schema,
)

__all__ = [
    "KDF",
    "QKD",
    "SCHEMA_VERSION",
    "Auth",
    "Etsi014",
    "Policy",
    "Rules",
    "Session",
    "SimulatedLink",
    "Suite",
    "Sunset",
    "json_schema",
    "load_policy",
    "load_policy_with_warnings",
    "parse_policy",
    "policy_from_dict",
]

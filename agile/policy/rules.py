"""The rules between a policy's fields: contradictions, forbidden algorithms, sunsets.

A field can be valid on its own and still contradict another: a suite that uses an algorithm
that ``rules.forbidden`` lists, QKD required with no QKD source, a rekey interval longer than
the session lifetime. :func:`check` finds every such problem, each with the path of the field
at fault, so that the loader can point at it in the file. :func:`warnings` finds what is not
wrong yet but will be: an algorithm whose sunset date is near.

Rules apply to exact algorithm names (after aliases such as ``X-Wing`` are resolved):
forbidding ``DHKEM(X25519, HKDF-SHA256)`` does not forbid the X-Wing hybrid, which has its
own name. ``min_nist_level`` applies to a suite as a whole — a hybrid is as strong as its
strongest post-quantum KEM — and to the set of signature algorithms (all must verify, so the
strongest counts).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from agile.policy import algorithms

if TYPE_CHECKING:
    from agile.policy.model import Policy

FieldPath = tuple[str | int, ...]


@dataclass(frozen=True, kw_only=True)
class RuleProblem:
    """One problem (or warning) at ``path`` inside a policy document."""

    path: FieldPath
    message: str
    sections: frozenset[str] = frozenset()
    """The top-level sections whose values the problem depends on."""

    @property
    def dotted_path(self) -> str:
        return ".".join(str(part) for part in self.path) or "<policy>"


def today_utc() -> dt.date:
    """Today's date in UTC: the day that sunset dates are compared with."""
    return dt.datetime.now(dt.UTC).date()


def used_algorithms(policy: Policy) -> Iterator[tuple[FieldPath, str]]:
    """Every algorithm the policy would use, with the path of the field that names it."""
    for i, suite in enumerate(policy.suites):
        for j, component in enumerate(suite.components):
            yield ("suites", i, "components", j), component
    if policy.auth.method == "signature":
        for j, name in enumerate(policy.auth.signature_algorithms):
            yield ("auth", "signature_algorithms", j), name
    yield ("session", "aead"), policy.session.aead
    yield ("kdf", "hash"), policy.kdf.hash


def check(policy: Policy, *, today: dt.date) -> list[RuleProblem]:
    """Return every contradiction in ``policy`` (an empty list when there is none)."""
    checks: list[tuple[frozenset[str], Iterator[RuleProblem]]] = [
        (frozenset({"suites"}), _check_suites(policy)),
        (frozenset({"qkd", "suites"}), _check_qkd(policy)),
        (frozenset({"auth"}), _check_auth(policy)),
        (frozenset({"session"}), _check_session(policy)),
        (frozenset({"rules"}), _check_algorithm_rules(policy, today)),
    ]
    return [
        replace(problem, sections=sections | {str(problem.path[0])})
        for sections, found in checks
        for problem in found
    ]


def warnings(policy: Policy, *, today: dt.date) -> list[RuleProblem]:
    """Return a warning for each used algorithm whose sunset date is within its ``warn_days``."""
    found: list[RuleProblem] = []
    for k, sunset in enumerate(policy.rules.sunset):
        start = sunset.date - dt.timedelta(days=sunset.warn_days)
        if not start <= today <= sunset.date:
            continue
        days = (sunset.date - today).days
        for path, name in used_algorithms(policy):
            if name == sunset.algorithm:
                found.append(
                    RuleProblem(
                        path=path,
                        message=(
                            f"{name!r} reaches its sunset on {sunset.date.isoformat()} "
                            f"(rules.sunset.{k}, in {days} days); plan its replacement"
                        ),
                    )
                )
    return found


def _check_suites(policy: Policy) -> Iterator[RuleProblem]:
    names: dict[str, int] = {}
    component_sets: dict[frozenset[str], int] = {}
    for i, suite in enumerate(policy.suites):
        if suite.name in names:
            yield RuleProblem(
                path=("suites", i, "name"),
                message=f"suite name {suite.name!r} is already used by suites.{names[suite.name]}",
            )
        names.setdefault(suite.name, i)
        key = frozenset(suite.components)
        if key in component_sets:
            yield RuleProblem(
                path=("suites", i, "components"),
                message=(
                    f"same components as suites.{component_sets[key]}; "
                    "each suite must offer a different set"
                ),
            )
        component_sets.setdefault(key, i)


def _check_qkd(policy: Policy) -> Iterator[RuleProblem]:
    qkd = policy.qkd
    if qkd.source == "none":
        if qkd.required:
            yield RuleProblem(
                path=("qkd", "required"),
                message=(
                    "QKD is required but qkd.source is 'none'; set a source or required = false"
                ),
            )
        for i, suite in enumerate(policy.suites):
            if suite.uses_qkd:
                j = suite.components.index(algorithms.QKD_COMPONENT)
                yield RuleProblem(
                    path=("suites", i, "components", j),
                    message=(
                        "the suite uses QKD but qkd.source is 'none'; "
                        "set qkd.source or remove 'QKD' from the suite"
                    ),
                )
        return
    if not policy.uses_qkd:
        yield RuleProblem(
            path=("qkd", "source"),
            message=(
                f"qkd.source is {qkd.source!r} but no suite uses the 'QKD' component; "
                "add 'QKD' to a suite or set source = 'none'"
            ),
        )
    if qkd.source == "etsi014" and qkd.etsi014 is None:
        yield RuleProblem(
            path=("qkd", "source"),
            message="source 'etsi014' needs a [qkd.etsi014] section (kme_url, sae_id, ...)",
        )
    if qkd.required:
        for i, suite in enumerate(policy.suites):
            if not suite.uses_qkd:
                yield RuleProblem(
                    path=("suites", i, "components"),
                    message=(
                        "qkd.required is true (fail closed) but this suite has no 'QKD' "
                        "component; add it or set qkd.required = false"
                    ),
                )
    yield from _check_trust_path(policy)


def _check_trust_path(policy: Policy) -> Iterator[RuleProblem]:
    qkd = policy.qkd
    if qkd.on_violation == "fallback" and qkd.required:
        yield RuleProblem(
            path=("qkd", "on_violation"),
            message=(
                "on_violation 'fallback' needs qkd.required = false: a policy that requires "
                "QKD has nothing to fall back to; use 'fail' or make QKD optional"
            ),
        )
    excluded = set(qkd.excluded_nodes)
    for j, node in enumerate(qkd.required_nodes):
        if node in excluded:
            yield RuleProblem(
                path=("qkd", "required_nodes", j),
                message=(
                    f"node {node!r} is both required and excluded "
                    f"(qkd.excluded_nodes.{qkd.excluded_nodes.index(node)}); no key can pass"
                ),
            )
    if qkd.max_trusted_nodes is not None and len(qkd.required_nodes) > qkd.max_trusted_nodes + 2:
        yield RuleProblem(
            path=("qkd", "required_nodes"),
            message=(
                f"{len(qkd.required_nodes)} required nodes cannot fit on a path with at most "
                f"{qkd.max_trusted_nodes} trusted nodes (plus its 2 ends); raise "
                "qkd.max_trusted_nodes or require fewer nodes"
            ),
        )


def _check_auth(policy: Policy) -> Iterator[RuleProblem]:
    auth = policy.auth
    if auth.method == "signature":
        if not auth.signature_algorithms:
            yield RuleProblem(
                path=("auth", "signature_algorithms"),
                message="method 'signature' needs at least one signature algorithm",
            )
        for field in ("psk_id", "psk_file"):
            if getattr(auth, field) is not None:
                yield RuleProblem(
                    path=("auth", field),
                    message=f"{field} is for method 'psk' but auth.method is 'signature'",
                )
        if auth.trust_file is not None and auth.peer_public_keys:
            yield RuleProblem(
                path=("auth", "peer_public_keys"),
                message="give either trust_file or peer_public_keys, not both",
            )
        for name in auth.peer_public_keys:
            if name not in auth.signature_algorithms:
                yield RuleProblem(
                    path=("auth", "peer_public_keys", name),
                    message=(
                        f"a key is pinned for {name!r}, which signature_algorithms does not list"
                    ),
                )
        return
    for field in ("signature_algorithms", "trust_file", "peer_public_keys"):
        if getattr(auth, field):
            yield RuleProblem(
                path=("auth", field),
                message=f"{field} is for method 'signature' but auth.method is 'psk'",
            )


def _check_session(policy: Policy) -> Iterator[RuleProblem]:
    session = policy.session
    if session.rekey_interval_s > session.lifetime_s:
        yield RuleProblem(
            path=("session", "rekey_interval_s"),
            message=(
                f"rekey interval {session.rekey_interval_s} s is longer than the session "
                f"lifetime {session.lifetime_s} s; make it at most lifetime_s"
            ),
        )


def _check_algorithm_rules(policy: Policy, today: dt.date) -> Iterator[RuleProblem]:
    rules = policy.rules
    forbidden = set(rules.forbidden)
    for path, name in used_algorithms(policy):
        if name in forbidden:
            index = rules.forbidden.index(name)
            yield RuleProblem(
                path=path, message=f"{name!r} is forbidden by rules.forbidden.{index}"
            )

    for i, suite in enumerate(policy.suites):
        if suite.nist_level < rules.min_nist_level:
            yield RuleProblem(
                path=("suites", i, "components"),
                message=(
                    f"suite {suite.name!r} has NIST level {suite.nist_level}, below "
                    f"rules.min_nist_level {rules.min_nist_level}; add a stronger KEM"
                ),
            )
    auth = policy.auth
    if auth.method == "signature" and auth.signature_algorithms:
        level = max(algorithms.info(n).nist_level for n in auth.signature_algorithms)
        if level < rules.min_nist_level:
            yield RuleProblem(
                path=("auth", "signature_algorithms"),
                message=(
                    f"the strongest signature algorithm has NIST level {level}, below "
                    f"rules.min_nist_level {rules.min_nist_level}; add ML-DSA"
                ),
            )

    seen: dict[str, int] = {}
    for k, sunset in enumerate(rules.sunset):
        if sunset.algorithm in seen:
            yield RuleProblem(
                path=("rules", "sunset", k, "algorithm"),
                message=(
                    f"{sunset.algorithm!r} already has a sunset at "
                    f"rules.sunset.{seen[sunset.algorithm]}"
                ),
            )
        seen.setdefault(sunset.algorithm, k)
        if today <= sunset.date:
            continue
        for path, name in used_algorithms(policy):
            if name == sunset.algorithm:
                yield RuleProblem(
                    path=path,
                    message=(
                        f"{name!r} was sunset on {sunset.date.isoformat()} (rules.sunset.{k}) "
                        "and is refused; replace it"
                    ),
                )

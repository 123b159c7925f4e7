"""Read policy documents (TOML, JSON, YAML), resolve ``extends``, report every problem.

Every problem is reported at once, each located as ``FILE:LINE:COL: field.path: message``:
syntax errors where the parser found them, and validation errors at the field they concern
(or, for a missing field, at the table that should hold it). A field inherited through
``extends`` is located in the file that wrote it.

``extends`` names a built-in policy (``"hybrid-default-latest"``) or another policy file
(a path relative to the extending file). The base is merged under the document: tables
merge key by key, every other value (lists included) is replaced whole.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from agile import audit
from agile._errors import PolicyError, PolicyProblem
from agile.policy import builtin, rules
from agile.policy.model import Policy
from qkd import _documents

Format = Literal["toml", "json", "yaml"]
FieldPath = tuple[str | int, ...]

MAX_DOCUMENT_BYTES = 1 << 20
"""Policy files are small; anything larger than 1 MiB is refused before parsing."""
MAX_EXTENDS_DEPTH = 8

_SUFFIXES: dict[str, Format] = {".toml": "toml", ".json": "json", ".yaml": "yaml", ".yml": "yaml"}
_ROOT = "<policy>"
_YAML_MISSING = "YAML policies need PyYAML: pip install 'qkd-agile[yaml]' (or use TOML)"


@dataclass
class _Document:
    """A parsed document before validation: its data, and where each field was written."""

    data: dict[str, Any]
    where: dict[FieldPath, tuple[str, int, int]]
    file: str


class _Problems(Exception):
    """Internal: problems that stop reading a document (raised as PolicyError at the top)."""

    def __init__(self, problems: list[PolicyProblem]) -> None:
        super().__init__(f"{len(problems)} problems")
        self.problems = problems


def load_policy(source: str | os.PathLike[str], *, today: dt.date | None = None) -> Policy:
    """Load a policy from a file (TOML, JSON, YAML) or a built-in name, fully validated.

    ``source`` is a path, or a built-in name such as ``"hybrid-default-latest"``. ``today``
    is the date that sunset rules are checked against (default: today, UTC). Warnings about
    approaching sunsets are audit events (``policy_warning`` on ``agile.audit``).

    Raises :class:`agile.PolicyError` carrying every problem found.

    Example::

        >>> policy = load_policy("pqc-only-latest")
        >>> policy.fingerprint.startswith("sha256:")
        True
    """
    policy, _ = load_policy_with_warnings(source, today=today)
    return policy


def load_policy_with_warnings(
    source: str | os.PathLike[str], *, today: dt.date | None = None
) -> tuple[Policy, list[PolicyProblem]]:
    """Like :func:`load_policy`, also returning the located sunset warnings."""
    day = today or rules.today_utc()
    try:
        document = _read_source(source, chain=())
    except _Problems as exc:
        raise PolicyError(exc.problems) from None
    return _validate(document, day)


def parse_policy(
    text: str,
    *,
    filename: str = "<string>",
    format: Format = "toml",
    today: dt.date | None = None,
) -> Policy:
    """Validate a policy given as text; ``extends`` may name built-ins or paths (from cwd)."""
    day = today or rules.today_utc()
    try:
        document = _parse_text(text, filename, format, base_dir=Path.cwd(), chain=())
    except _Problems as exc:
        raise PolicyError(exc.problems) from None
    return _validate(document, day)[0]


def policy_from_dict(
    data: Mapping[str, Any], *, source: str = "<dict>", today: dt.date | None = None
) -> Policy:
    """Validate a policy given as a mapping (no positions: problems are located at 1:1)."""
    day = today or rules.today_utc()
    document = _Document(data=dict(data), where={}, file=source)
    try:
        document = _resolve_extends(document, base_dir=Path.cwd(), chain=(source,))
    except _Problems as exc:
        raise PolicyError(exc.problems) from None
    return _validate(document, day)[0]


# ----------------------------------------------------------------------------- reading


def locate(source: str | os.PathLike[str], path: FieldPath, message: str) -> PolicyProblem:
    """A problem at ``path`` of the policy read from ``source``, located in its file.

    For checks that other parts of ``agile`` make on a valid policy (``agile.tls`` refuses a
    suite that has no TLS group): the message points at the line that needs the change.
    """
    try:
        document = _read_source(source, chain=())
    except _Problems:
        return _problem(str(source), 1, 1, _dotted(path), message)
    return _locate(document, path, message)


def _read_source(source: str | os.PathLike[str], *, chain: tuple[str, ...]) -> _Document:
    if isinstance(source, str) and builtin.is_builtin_name(source):
        name = builtin.resolve(source)
        label = builtin.label(name)
        if label in chain:
            raise _Problems([_problem(chain[-1], 1, 1, "extends", f"cycle through {source!r}")])
        return _parse_text(
            builtin.read_text(name), label, "toml", base_dir=None, chain=(*chain, label)
        )
    path = Path(source)
    label = str(source)
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        if isinstance(source, str) and os.sep not in source and not path.suffix:
            known = ", ".join(builtin.names())
            message = f"no built-in policy named {source!r}; known: {known}"
        else:
            message = f"unknown policy format {path.suffix!r}; use .toml, .json, .yaml or .yml"
        raise _Problems([_problem(label, 1, 1, _ROOT, message)])
    if str(path.resolve()) in {str(Path(c).resolve()) for c in chain if not c.startswith("<")}:
        raise _Problems([_problem(chain[-1], 1, 1, "extends", f"extends cycle through {label}")])
    try:
        text = _documents.read_text(
            path, what="policy", max_bytes=MAX_DOCUMENT_BYTES, limit="a policy is at most 1 MiB"
        )
    except _documents.DocumentSyntaxError as exc:
        raise _Problems([_problem(label, exc.line, exc.col, _ROOT, exc.message)]) from None
    return _parse_text(text, label, fmt, base_dir=path.parent, chain=(*chain, label))


def _parse_text(
    text: str, file: str, fmt: Format, *, base_dir: Path | None, chain: tuple[str, ...]
) -> _Document:
    if len(text.encode("utf-8", "surrogatepass")) > MAX_DOCUMENT_BYTES:
        raise _Problems([_problem(file, 1, 1, _ROOT, "a policy document is at most 1 MiB")])
    text = text.removeprefix("\ufeff")
    try:
        data, positions = _documents.parse(fmt, text, root=_ROOT, yaml_missing=_YAML_MISSING)
    except _documents.DocumentSyntaxError as exc:
        raise _Problems([_problem(file, exc.line, exc.col, exc.path, exc.message)]) from None
    except RecursionError:
        raise _Problems(
            [_problem(file, 1, 1, _ROOT, "the document is nested too deeply")]
        ) from None
    problems = [
        _problem(file, line, col, _dotted(path), msg) for path, line, col, msg in positions.problems
    ]
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        problems.append(
            _problem(file, 1, 1, _ROOT, f"the document is {kind}; expected a table of fields")
        )
    if problems:
        raise _Problems(problems)
    where = {path: (file, line, col) for path, (line, col) in positions.at.items()}
    document = _Document(data=data, where=where, file=file)
    return _resolve_extends(document, base_dir=base_dir, chain=chain)


# ----------------------------------------------------------------------------- extends


def _resolve_extends(
    document: _Document, *, base_dir: Path | None, chain: tuple[str, ...]
) -> _Document:
    if "extends" not in document.data:
        return document
    data = dict(document.data)
    target = data.pop("extends")
    line, col = document.where.get(("extends",), (document.file, 1, 1))[1:]
    if not isinstance(target, str) or not target:
        raise _Problems(
            [_problem(document.file, line, col, "extends", "must be the name of a policy")]
        )
    if len(chain) > MAX_EXTENDS_DEPTH:
        raise _Problems(
            [_problem(document.file, line, col, "extends", f"more than {MAX_EXTENDS_DEPTH} levels")]
        )
    source: str = target
    if not builtin.is_builtin_name(target):
        if base_dir is None:
            raise _Problems(
                [
                    _problem(
                        document.file,
                        line,
                        col,
                        "extends",
                        "a built-in policy can only extend built-ins",
                    )
                ]
            )
        source = str(base_dir / target)
    try:
        base = _read_source(source, chain=chain)
    except _Problems as exc:
        # Say which `extends` led to the base's problems, then list them.
        lead = _problem(document.file, line, col, "extends", f"the policy {target!r} is invalid")
        raise _Problems([lead, *exc.problems]) from None
    merged = _merge(base.data, data)
    replaced = _replaced_paths(data)
    where = {
        path: place
        for path, place in base.where.items()
        if not any(path[: len(r)] == r for r in replaced)
    }
    where.update(document.where)
    where.pop(("extends",), None)
    return _Document(data=merged, where=where, file=document.file)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _replaced_paths(data: dict[str, Any], prefix: FieldPath = ()) -> list[FieldPath]:
    """Paths whose value the document replaces whole (anything but a table)."""
    paths: list[FieldPath] = []
    for key, value in data.items():
        if isinstance(value, dict):
            paths += _replaced_paths(value, (*prefix, key))
        else:
            paths.append((*prefix, key))
    return paths


# ----------------------------------------------------------------------------- validation


def _validate(document: _Document, today: dt.date) -> tuple[Policy, list[PolicyProblem]]:
    collected: list[rules.RuleProblem] = []
    problems: list[PolicyProblem] = []
    policy: Policy | None = None
    try:
        policy = Policy.model_validate(
            document.data, context={"today": today, "problems": collected}
        )
    except ValidationError as exc:
        errors = exc.errors()
        problems += [_locate(document, _error_path(e), _error_message(e)) for e in errors]
        problems += _rule_problems_of_valid_sections(document, errors, today)
    except RecursionError:
        problems.append(_problem(document.file, 1, 1, _ROOT, "the document is nested too deeply"))
    problems += [_locate(document, p.path, p.message) for p in collected]
    if problems or policy is None:
        raise PolicyError(_ordered(problems))
    warnings = [
        _locate(document, w.path, "warning: " + w.message)
        for w in rules.warnings(policy, today=today)
    ]
    for warning in warnings:
        audit.emit(
            "policy_warning",
            policy=policy.name,
            policy_fingerprint=policy.fingerprint,
            reason=str(warning),
        )
    return policy, warnings


# Stand-ins for invalid required fields, so that the rules between the valid sections can
# still be checked; problems that depend on a stand-in are dropped.
_STAND_INS: dict[str, Any] = {
    "schema_version": 1,
    "name": "stand-in",
    "version": "0",
    "suites": [{"name": "stand-in", "components": ["ML-KEM-1024"]}],
}


def _rule_problems_of_valid_sections(
    document: _Document, errors: list[ErrorDetails], today: dt.date
) -> list[PolicyProblem]:
    """The rule problems among the sections that did validate, to report all at once."""
    invalid = {str(e["loc"][0]) for e in errors if e["loc"]}
    if not isinstance(document.data, dict) or any(not e["loc"] for e in errors):
        return []
    data = {k: v for k, v in document.data.items() if k not in invalid}
    data.update({k: v for k, v in _STAND_INS.items() if k in invalid})
    collected: list[rules.RuleProblem] = []
    try:
        Policy.model_validate(data, context={"today": today, "problems": collected})
    except (ValidationError, RecursionError):
        return []
    return [_locate(document, p.path, p.message) for p in collected if not p.sections & invalid]


def _ordered(problems: list[PolicyProblem]) -> list[PolicyProblem]:
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.file, p.line, p.col))


def _error_path(error: ErrorDetails) -> FieldPath:
    # A dict key that failed validation appears as (..., key, "[key]"): locate it at the key.
    return tuple(part for part in error["loc"] if part != "[key]")


def _error_message(error: ErrorDetails) -> str:
    return _documents.error_message(error, docs="docs/policy.md")


def _locate(document: _Document, path: FieldPath, message: str) -> PolicyProblem:
    for end in range(len(path), 0, -1):
        place = document.where.get(path[:end])
        if place is not None:
            file, line, col = place
            return _problem(file, line, col, _dotted(path), message)
    return _problem(document.file, 1, 1, _dotted(path), message)


def _dotted(path: FieldPath) -> str:
    return _documents.dotted(path, _ROOT)


def _problem(file: str, line: int, col: int, path: str, message: str) -> PolicyProblem:
    return PolicyProblem(
        file=file, line=line, col=col, path=path, message=_documents.one_line(message)
    )

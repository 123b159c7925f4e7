"""Network files (qkd.network.loader): formats, located errors, schema, and fuzzing."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from qkd import QKDError
from qkd.network.loader import NetworkFileError, load_network, network_from_dict, parse_network
from qkd.network.model import json_schema

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "docs" / "networks").glob("*.toml"))
METRO = ROOT / "docs" / "networks" / "metro-ring.toml"
LOCATED = re.compile(r"^.+:\d+:\d+: .+: .+$")

SMALL = """\
[network]
name = "small"

[[nodes]]
name = "A"
kind = "endpoint"

[[nodes]]
name = "B"
kind = "trusted"

[[links]]
id = "A-B"
a = "A"
b = "B"
kind = "fixed"
key_rate_bps = 100.0

[[demands]]
from = "A"
to = "B"
rate_bps = 10.0
"""


def _problems(text: str, fmt: str = "toml") -> list[str]:
    with pytest.raises(NetworkFileError) as info:
        parse_network(text, filename="net." + fmt, format=fmt)  # type: ignore[arg-type]
    return [str(p) for p in info.value.problems]


def test_the_examples_load() -> None:
    assert METRO in EXAMPLES
    for path in EXAMPLES:
        network = load_network(path)
        assert network.nodes
        assert network.links


def test_toml_json_and_yaml_hold_the_same_tree(tmp_path: Path) -> None:
    data = tomllib.loads(METRO.read_text(encoding="utf-8"))
    (tmp_path / "n.json").write_text(json.dumps(data), encoding="utf-8")
    (tmp_path / "n.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    reference = load_network(METRO)
    assert load_network(tmp_path / "n.json") == reference
    assert load_network(tmp_path / "n.yaml") == reference
    assert network_from_dict(data) == reference


def test_a_small_network_round_trips_its_fields() -> None:
    network = parse_network(SMALL)
    assert network.network.name == "small"
    assert [n.kind for n in network.nodes] == ["endpoint", "trusted"]
    assert network.demands[0].from_ == "A"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('kind = "endpoint"', 'kind = "router"', "net.toml:6:1: nodes.0.kind: Input should be"),
        ('b = "B"', 'b = "Z"', "net.toml:15:1: links.0.b: no node named 'Z'"),
        ('kind = "fixed"', 'kind = "warp"', "net.toml:16:1: links.0.kind: unknown link kind"),
        (
            'kind = "fixed"\nkey_rate_bps = 100.0',
            'kind = "free-space"\npreset = "gys"\npulse_rate_hz = 1e8',
            "net.toml:12:1: links.0: give the channel as loss_db (measured) or as length_km",
        ),
        (
            'kind = "fixed"\nkey_rate_bps = 100.0',
            'kind = "free-space"\npreset = "gys"\npulse_rate_hz = 1e8\nloss_db = -2',
            "net.toml:19:1: links.0.loss_db: Input should be greater than or equal to 0",
        ),
        ("key_rate_bps = 100.0", "key_rate_bps = -1.0", "net.toml:17:1: links.0.key_rate_bps:"),
        ("key_rate_bps = 100.0", "key_rate = 100.0", "net.toml:17:1: links.0.key_rate: unknown"),
        ('to = "B"', 'to = "A"', "net.toml:21:1: demands.0.to: a demand needs two different"),
        ('name = "small"', "", "net.toml:1:1: network.name: required field is missing"),
        ('from = "A"', 'from = "A"\nfrom = "B"', "net.toml:21:11: (syntax): Cannot overwrite"),
    ],
)
def test_located_errors(old: str, new: str, expected: str) -> None:
    problems = _problems(SMALL.replace(old, new, 1))
    assert any(p.startswith(expected) for p in problems), problems
    assert all(LOCATED.match(p) for p in problems)


def test_every_problem_is_reported_at_once() -> None:
    text = SMALL.replace('kind = "endpoint"', 'kind = "router"').replace(
        "rate_bps = 10.0", "rate_bps = 0"
    )
    problems = _problems(text)
    assert [p.split(": ")[1] for p in problems] == ["nodes.0.kind", "demands.0.rate_bps"]


def test_duplicates_are_refused_where_they_are_written() -> None:
    text = SMALL + '\n[[demands]]\nfrom = "A"\nto = "B"\nrate_bps = 5.0\n'
    text += '\n[[nodes]]\nname = "B"\nkind = "trusted"\n'
    problems = _problems(text)
    assert any(p.startswith("net.toml:24:1: demands.1: the pair ('A', 'B')") for p in problems)
    assert any(p.startswith("net.toml:30:1: nodes.2.name: node 'B' is already") for p in problems)


def test_satellite_links_need_located_ground_stations() -> None:
    text = SMALL.replace('kind = "fixed"\nkey_rate_bps = 100.0', 'kind = "satellite"\n'
                         "altitude_km = 500\ninclination_deg = 97.4")  # fmt: skip
    problems = _problems(text)
    assert any(
        p.startswith("net.toml:14:1: links.0.a: a satellite link ends at ground stations")
        for p in problems
    ), problems
    text = text.replace('kind = "endpoint"', 'kind = "ground-station"')
    text = text.replace('kind = "trusted"', 'kind = "ground-station"')
    problems = _problems(text)
    assert any("links.0.a: ground station 'A' needs latitude_deg" in p for p in problems)
    assert any("links.0.b: ground station 'B' needs latitude_deg" in p for p in problems)
    # Half a position is refused at the node itself.
    half = text.replace('kind = "ground-station"', 'kind = "ground-station"\nlatitude_deg = 1.0')
    assert any("has latitude_deg but no longitude_deg" in p for p in _problems(half))


def test_json_errors_are_located() -> None:
    data = tomllib.loads(SMALL)
    data["links"][0]["key_rate_bps"] = "fast"
    text = json.dumps(data, indent=1)
    problems = _problems(text, "json")
    line = next(n for n, row in enumerate(text.splitlines(), 1) if '"fast"' in row)
    assert problems[0].startswith(f"net.json:{line}:")
    assert "links.0.key_rate_bps" in problems[0]


def test_unreadable_and_unknown_files(tmp_path: Path) -> None:
    with pytest.raises(NetworkFileError, match="cannot read the network file"):
        load_network(tmp_path / "missing.toml")
    with pytest.raises(NetworkFileError, match="unknown format"):
        load_network(tmp_path / "net.ini")
    binary = tmp_path / "net.toml"
    binary.write_bytes(b'[network]\nname = "\xff"\n')
    with pytest.raises(NetworkFileError, match=r"net.toml:2:9: <network>: the file is not UTF-8"):
        load_network(binary)


def test_the_error_is_a_qkd_error() -> None:
    with pytest.raises(QKDError):
        parse_network("")


def test_schema_describes_the_file() -> None:
    schema = json_schema()
    assert set(schema["properties"]) == {"network", "nodes", "links", "demands"}
    assert "from" in schema["$defs"]["Demand"]["properties"]
    kinds = json.dumps(schema["$defs"])
    for kind in ("fixed", "fibre", "twin-field", "repeater"):
        assert f'"{kind}"' in kinds


# ----------------------------------------------------------------------------- fuzzing


def _check_never_a_traceback(text: str, fmt: str) -> None:
    # Either the text is a valid network, or every problem is one located line; any other
    # exception fails the test.
    problems: tuple[object, ...] = ()
    try:
        parse_network(text, filename="fuzz." + fmt, format=fmt)  # type: ignore[arg-type]
    except NetworkFileError as exc:
        problems = exc.problems
        assert problems
    for problem in problems:
        assert LOCATED.match(str(problem)), str(problem)
        assert "\n" not in str(problem)


@st.composite
def mutated(draw: st.DrawFn, base: str) -> str:
    text = base
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        i = draw(st.integers(min_value=0, max_value=len(text)))
        j = draw(st.integers(min_value=i, max_value=min(len(text), i + 12)))
        insert = draw(
            st.one_of(
                st.text(max_size=6),
                st.sampled_from(
                    ['"', "[", "]]", "=", "-1", "1e999", "nan", "{}", "[[links]]", "\n", "kind"]
                ),
            )
        )
        text = text[:i] + insert + text[j:]
    return text


@settings(max_examples=300, deadline=None)
@given(mutated(SMALL))
def test_fuzzed_toml_gives_located_errors(text: str) -> None:
    _check_never_a_traceback(text, "toml")


@settings(max_examples=200, deadline=None)
@given(mutated(json.dumps(tomllib.loads(SMALL), indent=1)))
def test_fuzzed_json_gives_located_errors(text: str) -> None:
    _check_never_a_traceback(text, "json")


@settings(max_examples=150, deadline=None)
@given(mutated(yaml.safe_dump(tomllib.loads(SMALL))))
def test_fuzzed_yaml_gives_located_errors(text: str) -> None:
    _check_never_a_traceback(text, "yaml")


@settings(max_examples=150, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(["network", "nodes", "links", "demands", "name", "kind", "a", "b"]),
                inner,
                max_size=4,
            )
        ),
        max_leaves=12,
    )
)
def test_fuzzed_trees_give_errors_not_tracebacks(tree: object) -> None:
    _check_never_a_traceback(json.dumps(tree), "json")


_TLE_LINES = (
    "1 41731U 16051A   16353.90152003  .00000364  00000-0  17957-4 0  9993",
    "2 41731  97.3699 267.4500 0013200 178.5836 246.0824 15.23915303 19063",
)


def _satellite_text(orbit: str) -> str:
    text = SMALL.replace(
        'kind = "fixed"\nkey_rate_bps = 100.0', 'kind = "satellite"\n' + orbit
    )  # fmt: skip
    text = text.replace('kind = "endpoint"', 'kind = "ground-station"\nlatitude_deg = 40.4\n'
                        "longitude_deg = 117.6")  # fmt: skip
    return text.replace('kind = "trusted"', 'kind = "ground-station"\nlatitude_deg = 47.1\n'
                        "longitude_deg = 15.5")  # fmt: skip


def test_satellite_links_take_a_tle_or_a_circular_orbit() -> None:
    tle = f'tle = ["{_TLE_LINES[0]}", "{_TLE_LINES[1]}"]'
    network = parse_network(_satellite_text(tle))
    assert network.links[0].tle == list(_TLE_LINES)
    circular = parse_network(_satellite_text("altitude_km = 500\ninclination_deg = 97.4"))
    assert circular.links[0].tle is None
    broken = tle.replace("19063", "19064")
    problems = _problems(_satellite_text(broken))
    assert any("links.0: TLE line 2's checksum" in p for p in problems), problems
    assert all(LOCATED.match(p) for p in problems)
    both = _problems(_satellite_text(tle + "\naltitude_km = 500\ninclination_deg = 97.4"))
    assert any("links.0: give the orbit as tle or as altitude_km" in p for p in both), both
    neither = _problems(_satellite_text("min_elevation_deg = 10"))
    assert any("links.0: give the orbit: tle, or both" in p for p in neither), neither
    short = _problems(_satellite_text('tle = ["1 41731U", "2 41731"]'))
    assert any(p.split(": ")[1].startswith("links.0.tle.0") for p in short), short


def test_a_position_needs_both_coordinates_in_range() -> None:
    text = SMALL.replace('kind = "endpoint"', 'kind = "endpoint"\nlatitude_deg = 40.0', 1)
    problems = _problems(text)
    assert any(
        p.startswith("net.toml:4:1: nodes.0: node 'A' has latitude_deg but no longitude_deg")
        for p in problems
    ), problems
    text = SMALL.replace(
        'kind = "endpoint"', 'kind = "endpoint"\nlatitude_deg = 91\nlongitude_deg = 10', 1
    )
    problems = _problems(text)
    assert any(
        p.startswith("net.toml:7:1: nodes.0.latitude_deg: Input should be") for p in problems
    )

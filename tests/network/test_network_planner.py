"""The planner (qkd.network.planner): max-flow, paths, joint feasibility, bottlenecks, failures.

Random graphs are checked against brute force: the minimum cut over every node subset
(max-flow min-cut), and every simple path (widest, then fewest hops).
"""

from __future__ import annotations

import itertools
import math
from typing import Any
from unittest import mock

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from qkd.network import planner
from qkd.network.loader import network_from_dict
from qkd.network.planner import TOLERANCE, link_key_rate, plan
from qkd.physics import rates
from qkd.physics.repeater import ChainParameters, bbm92_key_fraction


def _net(
    nodes: dict[str, str],
    links: list[tuple[str, str, float]],
    demands: list[tuple[str, str, float]],
) -> dict[str, Any]:
    return {
        "network": {"name": "test"},
        "nodes": [{"name": n, "kind": k} for n, k in nodes.items()],
        "links": [
            {"id": f"L{i}", "a": a, "b": b, "kind": "fixed", "key_rate_bps": r}
            for i, (a, b, r) in enumerate(links)
        ],
        "demands": [{"from": s, "to": t, "rate_bps": r} for s, t, r in demands],
    }


def _plan(nodes: dict[str, str], links: list[tuple[str, str, float]], demands: Any) -> Any:
    return plan(network_from_dict(_net(nodes, links, demands)))


# ----------------------------------------------------------------------------- brute force


def _allowed(nodes: dict[str, str], s: str, t: str) -> set[str]:
    return {n for n, k in nodes.items() if k != "endpoint"} | {s, t}


def _min_cut(nodes: dict[str, str], links: list[tuple[str, str, float]], s: str, t: str) -> float:
    allowed = sorted(_allowed(nodes, s, t))
    inner = [n for n in allowed if n not in (s, t)]
    best = math.inf
    for size in range(len(inner) + 1):
        for chosen in itertools.combinations(inner, size):
            side = {s, *chosen}
            cut = sum(
                r
                for a, b, r in links
                if a in allowed and b in allowed and ((a in side) != (b in side))
            )
            best = min(best, cut)
    return best


def _simple_paths(
    nodes: dict[str, str], links: list[tuple[str, str, float]], s: str, t: str
) -> list[tuple[list[str], float]]:
    allowed = _allowed(nodes, s, t)
    cap: dict[frozenset[str], float] = {}
    for a, b, r in links:
        if a in allowed and b in allowed and r > 0:
            cap[frozenset((a, b))] = cap.get(frozenset((a, b)), 0.0) + r
    found: list[tuple[list[str], float]] = []

    def walk(path: list[str], width: float) -> None:
        here = path[-1]
        if here == t:
            found.append((path, width))
            return
        for edge, c in cap.items():
            if here in edge:
                (other,) = edge - {here}
                if other not in path:
                    walk([*path, other], min(width, c))

    walk([s], math.inf)
    return found


@st.composite
def graphs(draw: st.DrawFn) -> tuple[dict[str, str], list[tuple[str, str, float]], str, str]:
    n = draw(st.integers(min_value=2, max_value=7))
    names = [f"n{i}" for i in range(n)]
    kinds = {
        name: draw(st.sampled_from(["trusted", "trusted", "endpoint", "ground-station"]))
        for name in names
    }
    pairs = [(a, b) for a, b in itertools.combinations(names, 2)]
    chosen = draw(st.lists(st.sampled_from(pairs), max_size=14))
    rate = st.one_of(
        st.integers(min_value=0, max_value=20).map(float),
        st.floats(min_value=0.001, max_value=1e6, allow_nan=False, allow_infinity=False),
    )
    links = [(a, b, draw(rate)) for a, b in chosen]
    s, t = draw(st.permutations(names))[:2]
    return kinds, links, s, t


@settings(max_examples=150, deadline=None)
@given(graphs())
def test_max_flow_equals_min_cut(graph: tuple[dict[str, str], Any, str, str]) -> None:
    nodes, links, s, t = graph
    result = _plan(nodes, links, [(s, t, 1.0)])
    expected = _min_cut(nodes, links, s, t)
    assert result.demands[0].max_rate_bps == pytest.approx(expected, rel=1e-9, abs=1e-9)
    # The LP of one demand alone is the same max-flow, scaled by the requested rate.
    if expected > 0:
        assert result.common_scale == pytest.approx(expected, rel=1e-6)


@settings(max_examples=150, deadline=None)
@given(graphs())
def test_path_is_widest_then_fewest_hops(graph: tuple[dict[str, str], Any, str, str]) -> None:
    nodes, links, s, t = graph
    demand = _plan(nodes, links, [(s, t, 1.0)]).demands[0]
    paths = _simple_paths(nodes, links, s, t)
    if not paths:
        assert demand.path == ()
        assert demand.trusted_nodes is None
        assert demand.max_rate_bps == 0.0
        return
    widest = max(w for _, w in paths)
    fewest = min(len(p) for p, w in paths if w == widest)
    chosen = list(demand.path)
    assert (chosen, widest) in [(p, w) for p, w in paths]
    assert len(chosen) == fewest
    assert demand.trusted_nodes == len(chosen) - 2
    # No endpoint other than the demand's own ends is ever inside a path.
    assert all(nodes[n] != "endpoint" for n in chosen[1:-1])


@settings(max_examples=100, deadline=None)
@given(graphs(), st.integers(min_value=0, max_value=3), st.floats(min_value=0.05, max_value=1.2))
def test_single_failures_match_brute_force(
    graph: tuple[dict[str, str], Any, str, str], shift: int, fraction: float
) -> None:
    # Two demands with requested rates near their max-flow, so that failures matter; every
    # entry is checked against the minimum cut of the graph without the failed element.
    nodes, links, s, t = graph
    names = sorted(nodes)
    u, v = names[shift % len(names)], names[(shift + 1) % len(names)]
    pairs = [(s, t)] + ([(u, v)] if (u, v) != (s, t) else [])
    demands = [(a, b, max(_min_cut(nodes, links, a, b) * fraction, 0.5)) for a, b in pairs]
    result = _plan(nodes, links, demands)

    def failing(kept_nodes: dict[str, str], kept_links: list[Any]) -> list[tuple[str, str]]:
        out = []
        for a, b, wanted in demands:
            if (
                a not in kept_nodes
                or b not in kept_nodes
                or _min_cut(kept_nodes, kept_links, a, b) < wanted * (1 - TOLERANCE)
            ):
                out.append((a, b))
        return out

    expected = [
        ("link", f"L{i}", failing(nodes, links[:i] + links[i + 1 :])) for i in range(len(links))
    ]
    for name, kind in nodes.items():
        if kind != "endpoint":
            kept = {n: k for n, k in nodes.items() if n != name}
            kept_links = [(a, b, r) for a, b, r in links if name not in (a, b)]
            expected.append(("node", name, failing(kept, kept_links)))
    # An eavesdropping alarm on a link fails what the link's failure fails, listed after.
    expected += [("alarm", name, demands) for kind, name, demands in expected if kind == "link"]
    found = [(f.kind, f.failed, list(f.failed_demands)) for f in result.single_failures]
    assert found == expected


@pytest.mark.parametrize("k", [0, 1, 2, 5, 12])
def test_a_path_through_k_trusted_nodes_reports_k(k: int) -> None:
    names = ["src", *(f"t{i}" for i in range(k)), "dst"]
    nodes = dict.fromkeys(names, "trusted") | {"src": "endpoint", "dst": "endpoint"}
    links = [(a, b, 100.0 + i) for i, (a, b) in enumerate(itertools.pairwise(names))]
    demand = _plan(nodes, links, [("src", "dst", 50.0)]).demands[0]
    assert demand.trusted_nodes == k
    assert list(demand.path) == names
    assert demand.max_rate_bps == 100.0


def test_widest_path_beats_a_shorter_narrow_one() -> None:
    # A-D directly at 10 bit/s, or A-B-C-D at 100: the widest path is the long one.
    nodes = dict.fromkeys("ABCD", "trusted")
    links = [("A", "D", 10.0), ("A", "B", 100.0), ("B", "C", 100.0), ("C", "D", 100.0)]
    demand = _plan(nodes, links, [("A", "D", 5.0)]).demands[0]
    assert demand.path == ("A", "B", "C", "D")
    assert demand.max_rate_bps == 110.0


def test_an_endpoint_never_relays() -> None:
    nodes = {"A": "trusted", "E": "endpoint", "T": "trusted", "B": "trusted"}
    links = [("A", "E", 1000.0), ("E", "B", 1000.0), ("A", "T", 10.0), ("T", "B", 10.0)]
    result = _plan(nodes, links, [("A", "B", 5.0), ("A", "E", 5.0)])
    assert result.demands[0].max_rate_bps == 10.0
    assert result.demands[0].path == ("A", "T", "B")
    # E may be an end of its own demand.
    assert result.demands[1].max_rate_bps == 1010.0


def test_parallel_links_add_up() -> None:
    nodes = dict.fromkeys("AB", "trusted")
    result = _plan(nodes, [("A", "B", 300.0), ("B", "A", 200.0)], [("A", "B", 450.0)])
    assert result.demands[0].max_rate_bps == 500.0
    assert result.demands[0].met


def test_the_design_example() -> None:
    nodes = {"A": "endpoint", "B": "trusted", "C": "trusted", "D": "endpoint"}
    links = [("A", "B", 1200.0), ("B", "C", 900.0), ("C", "D", 1000.0)]
    doc = _plan(nodes, links, [("A", "D", 100.0)]).to_dict()
    assert doc["demands"] == [
        {
            "from": "A",
            "to": "D",
            "requested_bps": 100.0,
            "max_rate_bps": 900.0,
            "path": ["A", "B", "C", "D"],
            "trusted_nodes": 2,
            "met": True,
        }
    ]
    assert doc["feasible"] is True
    assert doc["bottlenecks"] == ["L1"]
    failures = {(f["kind"], f["failed"]): f["failed_demands"] for f in doc["single_failures"]}
    assert failures == {
        ("link", "L0"): [["A", "D"]],
        ("link", "L1"): [["A", "D"]],
        ("link", "L2"): [["A", "D"]],
        ("node", "B"): [["A", "D"]],
        ("node", "C"): [["A", "D"]],
        ("alarm", "L0"): [["A", "D"]],
        ("alarm", "L1"): [["A", "D"]],
        ("alarm", "L2"): [["A", "D"]],
    }


def test_demands_met_alone_can_be_infeasible_together() -> None:
    nodes = {"A": "endpoint", "B": "endpoint", "H": "trusted", "C": "endpoint"}
    links = [("A", "H", 1000.0), ("B", "H", 1000.0), ("H", "C", 600.0)]
    result = _plan(nodes, links, [("A", "C", 400.0), ("B", "C", 400.0)])
    assert all(d.met for d in result.demands)
    assert result.feasible is False
    assert result.common_scale == pytest.approx(600.0 / 800.0, rel=1e-9)
    assert result.bottlenecks == ("L2",)


def test_bottlenecks_in_series_are_all_listed() -> None:
    # Both links of a path carry the whole demand: every optimum saturates both.
    nodes = {"A": "endpoint", "B": "trusted", "C": "endpoint"}
    result = _plan(nodes, [("A", "B", 50.0), ("B", "C", 50.0)], [("A", "C", 80.0)])
    assert result.common_scale == pytest.approx(50.0 / 80.0)
    assert result.bottlenecks == ("L0", "L1")
    # A link with room to spare is not a bottleneck.
    wider = _plan(nodes, [("A", "B", 50.0), ("B", "C", 70.0)], [("A", "C", 80.0)])
    assert wider.bottlenecks == ("L0",)


def test_met_tolerance_is_relative_1e_9() -> None:
    nodes = dict.fromkeys("AB", "trusted")
    just = _plan(nodes, [("A", "B", 1000.0)], [("A", "B", 1000.0 * (1 + TOLERANCE / 2))])
    over = _plan(nodes, [("A", "B", 1000.0)], [("A", "B", 1000.0 * (1 + 10 * TOLERANCE))])
    assert just.demands[0].met
    assert just.feasible
    assert not over.demands[0].met
    assert not over.feasible


def test_single_failures_cover_links_and_relaying_nodes_only() -> None:
    nodes = {"A": "endpoint", "T": "trusted", "G": "ground-station", "B": "endpoint"}
    links = [("A", "T", 100.0), ("T", "B", 100.0), ("A", "G", 100.0), ("G", "B", 100.0)]
    result = _plan(nodes, links, [("A", "B", 150.0), ("A", "T", 500.0)])
    entries = [(f.kind, f.failed) for f in result.single_failures]
    assert entries == (
        [("link", f"L{i}") for i in range(4)]
        + [("node", "T"), ("node", "G")]
        + [("alarm", f"L{i}") for i in range(4)]
    )
    by = {(f.kind, f.failed): f.failed_demands for f in result.single_failures}
    # A->T (500 wanted, 200 possible) is unmet before any failure: listed everywhere.
    assert all(("A", "T") in demands for demands in by.values())
    # Each link carries half of A->B's 200: losing any one leaves 100 < 150.
    assert by[("link", "L0")] == (("A", "B"), ("A", "T"))
    # The demand whose own end fails is listed.
    assert by[("node", "T")] == (("A", "B"), ("A", "T"))
    # An alarm on a link fails what that link's failure fails.
    assert all(by[("alarm", f"L{i}")] == by[("link", f"L{i}")] for i in range(4))


def test_unreachable_demand() -> None:
    nodes = dict.fromkeys("ABC", "trusted")
    result = _plan(nodes, [("A", "B", 10.0)], [("A", "C", 1.0)])
    demand = result.demands[0]
    assert (demand.max_rate_bps, demand.path, demand.trusted_nodes, demand.met) == (
        0.0,
        (),
        None,
        False,
    )
    assert result.feasible is False


def test_no_demands_is_feasible() -> None:
    result = _plan(dict.fromkeys("AB", "trusted"), [("A", "B", 10.0)], [])
    assert result.feasible is True
    assert result.common_scale is None
    assert result.bottlenecks == ()


# ----------------------------------------------------------------------------- link rates


def _link(**fields: Any) -> Any:
    data = _net(dict.fromkeys("AB", "trusted"), [], [])
    data["links"] = [{"id": "x", "a": "A", "b": "B", **fields}]
    return network_from_dict(data).links[0]


def test_fibre_rate_is_the_decoy_rate_times_the_pulse_rate() -> None:
    link = _link(kind="fibre", preset="gys", length_km=20, pulse_rate_hz=1e9)
    _, per_pulse = rates.optimal_mu("gys", 20, method="vacuum+weak", nu=0.1)
    assert link_key_rate(link) == pytest.approx(per_pulse * 1e9, rel=1e-12)
    beyond = _link(kind="fibre", preset="gys", length_km=200, pulse_rate_hz=1e9)
    assert link_key_rate(beyond) == 0.0


def test_twin_field_scales_as_sqrt_eta() -> None:
    near = _link(kind="twin-field", length_km=100, pulse_rate_hz=1e9, coefficient=1e-3)
    far = _link(kind="twin-field", length_km=300, pulse_rate_hz=1e9, coefficient=1e-3)
    # 200 km more at 0.2 dB/km is 40 dB: sqrt gives 20 dB, a factor of 100.
    assert link_key_rate(near) / link_key_rate(far) == pytest.approx(100.0, rel=1e-12)
    assert link_key_rate(near) == pytest.approx(1e-3 * 10 ** (-20 / 20) * 1e9, rel=1e-12)


@pytest.mark.parametrize(("preset", "km"), [("gys", 20.0), ("snspd", 120.0), ("ingaas", 60.0)])
def test_free_space_with_a_fibres_loss_has_the_fibres_rate(preset: str, km: float) -> None:
    # The same detector behind the same loss gives the same key, whatever carries the light.
    alpha = {"gys": 0.21, "snspd": 0.20, "ingaas": 0.20}[preset]
    air = _link(kind="free-space", preset=preset, loss_db=alpha * km, pulse_rate_hz=1e8)
    fibre = _link(kind="fibre", preset=preset, length_km=km, pulse_rate_hz=1e8)
    assert link_key_rate(air) > 0
    assert link_key_rate(air) == pytest.approx(link_key_rate(fibre), rel=1e-9)
    infinite = _link(
        kind="free-space", preset=preset, loss_db=alpha * km, pulse_rate_hz=1e8, method="infinite"
    )
    _, per_pulse = rates.optimal_mu(preset, km, method="infinite")
    assert link_key_rate(infinite) == pytest.approx(per_pulse * 1e8, rel=1e-9)


def test_free_space_path_loss_comes_from_the_optics() -> None:
    # 144 km between La Palma and Tenerife (Schmitt-Manderbach et al., PRL 98, 010504 (2007)).
    link = _link(
        kind="free-space", preset="snspd", length_km=144, pulse_rate_hz=1e7,
        transmitter_m=0.15, receiver_m=1.0, divergence_rad=20e-6,
        attenuation_db_per_km=0.07, extra_loss_db=3.0,
    )  # fmt: skip
    spot = 0.15 + 144e3 * 20e-6
    expected = -20 * math.log10(1.0 / spot) + 0.07 * 144 + 3.0
    assert link.channel_loss_db == pytest.approx(expected, rel=1e-12)
    assert 20 < expected < 40
    same = _link(kind="free-space", preset="snspd", loss_db=expected, pulse_rate_hz=1e7)
    assert link_key_rate(link) == pytest.approx(link_key_rate(same), rel=1e-12)
    farther = link.model_copy(update={"length_km": 300.0})
    assert 0 < link_key_rate(farther) < link_key_rate(link)


def test_free_space_links_plan_in_a_network() -> None:
    data = _net(
        {"A": "endpoint", "R": "trusted", "B": "endpoint"},
        [],
        [("A", "B", 50.0)],
    )
    data["links"] = [
        {"id": "A-R", "a": "A", "b": "R", "kind": "free-space", "preset": "snspd",
         "loss_db": 30.0, "pulse_rate_hz": 1e8},
        {"id": "R-B", "a": "R", "b": "B", "kind": "fibre", "preset": "snspd",
         "length_km": 50, "pulse_rate_hz": 1e8},
    ]  # fmt: skip
    result = plan(network_from_dict(data))
    air = next(r for r in result.links if r.id == "A-R")
    assert air.kind == "free-space"
    assert result.demands[0].max_rate_bps == pytest.approx(
        min(r.key_rate_bps for r in result.links), rel=1e-9
    )
    assert result.demands[0].trusted_nodes == 1


def test_repeater_link_rate() -> None:
    link = _link(
        kind="repeater", segments=4, link_success=0.1, swap_success=0.9, fidelity=0.99,
        slot_s=1e-4, t2_s=1.0,
    )  # fmt: skip
    chain = ChainParameters(
        segments=4, link_success=0.1, swap_success=0.9, fidelity=0.99, slot_s=1e-4, t2_s=1.0
    )
    expected = 0.5 * bbm92_key_fraction(chain.mean_fidelity) / (chain.mean_slots * 1e-4)
    assert expected > 0
    assert link_key_rate(link) == pytest.approx(expected, rel=1e-12)


def test_satellite_link_rate_is_the_smaller_daily_key_over_the_day() -> None:
    from qkd.physics import satellite

    data = {
        "network": {"name": "sat"},
        "nodes": [
            {"name": "X", "kind": "ground-station", "latitude_deg": 40.4, "longitude_deg": 117.6},
            {"name": "G", "kind": "ground-station", "latitude_deg": 47.1, "longitude_deg": 15.5},
        ],
        "links": [
            {"id": "sat", "a": "X", "b": "G", "kind": "satellite", "altitude_km": 500,
             "inclination_deg": 97.4, "raan_deg": 30, "step_s": 2.0}
        ],
        "demands": [{"from": "X", "to": "G", "rate_bps": 1.0}],
    }  # fmt: skip
    result = plan(network_from_dict(data))
    orbit = satellite.CircularOrbit(altitude_km=500, inclination_deg=97.4, raan_deg=30)
    keys, windows = [], []
    for name, lat, lon in (("X", 40.4, 117.6), ("G", 47.1, 15.5)):
        station = satellite.GroundStation(name=name, latitude_deg=lat, longitude_deg=lon)
        day = satellite.track(orbit, station, duration_s=86_400, step_s=2.0)
        found = satellite.passes(day, min_elevation_deg=15)
        keys.append(sum(satellite.key_per_pass(p).secret_bits for p in found))
        windows += [(name, p.start_s, p.end_s) for p in found]
    assert min(keys) > 0
    assert result.links[0].key_rate_bps == pytest.approx(min(keys) / 86_400, rel=1e-12)
    assert sorted(result.links[0].windows) == sorted(windows)
    doc = result.to_dict()
    assert len(doc["links"][0]["pass_windows"]) == len(windows)


def _path_lp(
    nodes: dict[str, str], links: list[tuple[str, str, float]], demands: list[Any]
) -> tuple[float, set[frozenset[str]]]:
    # An independent formulation: one variable per simple path of each demand. Returns the
    # largest common scale and the edges that every optimum saturates.
    from scipy.optimize import linprog

    cap: dict[frozenset[str], float] = {}
    for a, b, r in links:
        if r > 0:
            cap[frozenset((a, b))] = cap.get(frozenset((a, b)), 0.0) + r
    edges = sorted(cap, key=sorted)
    columns: list[tuple[int, set[frozenset[str]]]] = []
    for k, (s, t, _) in enumerate(demands):
        for path, _ in _simple_paths(nodes, links, s, t):
            columns.append((k, {frozenset(p) for p in itertools.pairwise(path)}))
    n = len(columns) + 1
    a_ub = [[1.0 if e in used else 0.0 for _, used in columns] + [0.0] for e in edges]
    a_eq = [
        [1.0 if kk == k else 0.0 for kk, _ in columns] + [-d] for k, (_, _, d) in enumerate(demands)
    ]
    b_ub = [cap[e] for e in edges]
    objective = [0.0] * (n - 1) + [-1.0]
    first = linprog(objective, A_ub=a_ub or None, b_ub=b_ub or None, A_eq=a_eq,
                    b_eq=[0.0] * len(demands), bounds=(0, None), method="highs")  # fmt: skip
    scale = float(first.x[-1])
    always: set[frozenset[str]] = set()
    if scale <= 1e-12:
        return 0.0, always
    bounds = [(0.0, None)] * (n - 1) + [(scale * (1 - 1e-9), scale)]
    for row, e in zip(a_ub, edges, strict=True):
        if sum(r * x for r, x in zip(row, first.x, strict=True)) < cap[e] * (1 - 1e-7):
            continue
        least = linprog(row, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=[0.0] * len(demands),
                        bounds=bounds, method="highs")  # fmt: skip
        if least.fun >= cap[e] * (1 - 1e-6):
            always.add(e)
    return scale, always


# The planner solves small LPs in arc form and large ones in path form: both run here.
FORMS = pytest.mark.parametrize("arcs_up_to", [0, 10**9], ids=["path-form", "arc-form"])


@FORMS
@settings(max_examples=60, deadline=None)
@given(graphs(), st.integers(min_value=0, max_value=5), st.integers(min_value=1, max_value=20))
def test_common_scale_and_bottlenecks_match_a_path_lp(
    arcs_up_to: int, graph: tuple[dict[str, str], Any, str, str], shift: int, second: int
) -> None:
    nodes, links, s, t = graph
    links = [(a, b, float(round(r) % 21)) for a, b, r in links]  # small whole capacities
    names = sorted(nodes)
    u, v = names[shift % len(names)], names[(shift + 2) % len(names)]
    demands = [(s, t, 3.0)] + ([(u, v, float(second))] if (u, v) != (s, t) and u != v else [])
    with mock.patch.object(planner, "_ARCS_UP_TO_VARIABLES", arcs_up_to):
        result = _plan(nodes, links, demands)
    scale, always = _path_lp(nodes, links, demands)
    assert (result.common_scale or 0.0) == pytest.approx(scale, rel=1e-6, abs=1e-9)
    found = {frozenset((links[int(i[1:])][0], links[int(i[1:])][1])) for i in result.bottlenecks}
    if scale > 0:
        assert found == always


@FORMS
@settings(max_examples=60, deadline=None)
@given(
    graphs(),
    st.floats(min_value=0.0, max_value=1e15),
    st.floats(min_value=1e-6, max_value=1e15),
)
# A subnormal rate underflows to 0 in the LP's units, beside a dead-end link: its slack once
# divided by zero in the path form's bottleneck test.
@example(
    graph=(dict.fromkeys(["n0", "n1", "n2", "n3"], "trusted"),
           [("n1", "n3", 2.0), ("n0", "n1", 0.0)], "n3", "n1"),
    big=5e-324,
    wanted=1.0,
)  # fmt: skip
@example(
    graph=(dict.fromkeys(["n0", "n1", "n3"], "trusted"),
           [("n1", "n3", 2.0), ("n0", "n1", 0.0)], "n3", "n1"),
    big=1e-300,
    wanted=1e-6,
)  # fmt: skip
# A subnormal common scale: the LP's unit would lose its precision; the scale is 0.
@example(
    graph=({"n0": "endpoint", "n1": "endpoint"}, [("n0", "n1", 0.0)] * 2, "n0", "n1"),
    big=1e-310,
    wanted=1.0,
)  # fmt: skip
def test_extreme_valid_figures_plan_without_error(
    arcs_up_to: int, graph: tuple[dict[str, str], Any, str, str], big: float, wanted: float
) -> None:
    # Link rates and requests across their whole allowed range: the plan completes, and a
    # demand unmet alone makes the whole plan infeasible.
    nodes, links, s, t = graph
    links = [(a, b, big if i % 2 else r) for i, (a, b, r) in enumerate(links)]
    with mock.patch.object(planner, "_ARCS_UP_TO_VARIABLES", arcs_up_to):
        result = _plan(nodes, links, [(s, t, wanted)])
    demand = result.demands[0]
    assert demand.max_rate_bps == pytest.approx(_min_cut(nodes, links, s, t), rel=1e-9)
    if not demand.met:
        assert result.feasible is False
    # An edge below the LP's resolution (1e-9 of its unit: the largest capacity, lowered to
    # the most the demand can use) is never a bottleneck.
    edge_rate: dict[frozenset[str], float] = {}
    for a, b, r in links:
        edge_rate[frozenset((a, b))] = edge_rate.get(frozenset((a, b)), 0.0) + r
    if result.bottlenecks:
        unit = min(max(edge_rate.values()), demand.max_rate_bps * (1 + 1e-6))
        for name in result.bottlenecks:
            a, b, _ = links[int(name[1:])]
            assert edge_rate[frozenset((a, b))] >= 1e-9 * unit * (1 - 1e-9)


def test_repeater_link_with_a_cutoff_uses_the_exact_recursion() -> None:
    fields = {"kind": "repeater", "segments": 2, "link_success": 0.3, "slot_s": 1e-3}
    free = _link(**fields)
    cut = _link(**fields, cutoff_s=2e-3)
    from qkd.physics.repeater import two_link_cutoff_slots

    assert link_key_rate(cut) == pytest.approx(0.5 / (two_link_cutoff_slots(0.3, 2) * 1e-3))
    assert link_key_rate(cut) < link_key_rate(free)


def test_satellite_link_from_a_tle_counts_night_passes_only() -> None:
    from qkd.physics import satellite

    stations = {"X": (40.396, 117.577), "G": (47.067, 15.493)}
    link = {"id": "sat", "a": "X", "b": "G", "kind": "satellite",
            "tle": list(satellite.MICIUS_TLE), "days": 2, "step_s": 2.0}  # fmt: skip
    data = {
        "network": {"name": "sat"},
        "nodes": [
            {"name": n, "kind": "ground-station", "latitude_deg": lat, "longitude_deg": lon}
            for n, (lat, lon) in stations.items()
        ],
        "links": [link],
        "demands": [],
    }
    every = plan(network_from_dict(data)).links[0]
    data["links"] = [{**link, "max_sun_elevation_deg": -12.0}]
    dark = plan(network_from_dict(data)).links[0]
    orbit = satellite.TleOrbit(*satellite.MICIUS_TLE)
    keys = []
    for name, (lat, lon) in stations.items():
        found = satellite.find_passes(
            orbit,
            satellite.GroundStation(name=name, latitude_deg=lat, longitude_deg=lon),
            duration_s=2 * 86_400,
            step_s=2.0,
            min_elevation_deg=15,
            max_sun_elevation_deg=-12,
        )
        keys.append(sum(satellite.key_per_pass(p).secret_bits for p in found))
    assert dark.key_rate_bps == pytest.approx(min(keys) / (2 * 86_400), rel=1e-12)
    assert 0 < len(dark.windows) < len(every.windows)
    assert 0 < dark.key_rate_bps <= every.key_rate_bps


@st.composite
def larger_networks(
    draw: st.DrawFn,
) -> tuple[dict[Any, float], list[str], set[str], list[tuple[str, str, float]]]:
    # A random tree (so that most demands can be served), more links on top, a few
    # endpoints, and up to six demands.
    n = draw(st.integers(min_value=3, max_value=25))
    names = [f"n{i:02d}" for i in range(n)]
    endpoints = set(draw(st.lists(st.sampled_from(names), max_size=n // 5)))
    tree = [(names[draw(st.integers(0, i - 1))], names[i]) for i in range(1, n)]
    pairs = list(itertools.combinations(names, 2))
    extra = draw(st.lists(st.sampled_from(pairs), max_size=3 * n, unique=True))
    rate = st.one_of(
        st.integers(min_value=1, max_value=20).map(float),
        st.floats(min_value=0.01, max_value=1e4, allow_nan=False, allow_infinity=False),
    )
    caps = {(a, b): draw(rate) for a, b in {*tree, *extra}}
    ends = st.lists(st.sampled_from(names), min_size=2, max_size=2, unique=True)
    wanted = draw(st.lists(st.tuples(ends, rate), min_size=1, max_size=6))
    demands = list({(s, t): (s, t, d) for (s, t), d in wanted}.values())
    relays = set(names) - endpoints
    return caps, names, relays, demands


@settings(max_examples=120, deadline=None)
@given(larger_networks())
def test_the_path_lp_gives_the_arc_lps_scale_and_bottlenecks(network: Any) -> None:
    # The planner solves the multi-commodity LP in path form by column generation; the arc
    # form over every edge and commodity is the reference. Same lambda*, same bottlenecks.
    from qkd.network.planner import _common_scale, _common_scale_arcs, bottleneck_path, max_flow

    caps, names, relays, demands = network
    if not demands:
        return
    ratios = [max_flow(caps, relays | {s, t}, s, t) / d for s, t, d in demands]
    ceiling = min(ratios)
    paths = [bottleneck_path(caps, relays | {s, t}, s, t) for s, t, _ in demands]
    scale_paths, bound_paths = _common_scale(caps, names, relays, demands, ceiling, paths=paths)
    scale_arcs, bound_arcs = _common_scale_arcs(caps, names, relays, demands, ceiling)
    assert scale_paths == pytest.approx(scale_arcs, rel=1e-7, abs=1e-12)
    assert bound_paths == bound_arcs


@FORMS
def test_small_bottlenecks_beside_a_thousand_times_larger_link(arcs_up_to: int) -> None:
    # A -> B (1 bit/s) needs both of A's links (1 each, one of them through C); B -> C (499)
    # has 1,001 direct. The common scale is 2 (A -> B alone), and at it both of A's links are
    # full in every optimum. HiGHS's default tolerance once let the small links look loose.
    nodes = dict.fromkeys(["A", "B", "C", "D"], "trusted")
    links = [("A", "B", 1.0), ("A", "C", 1.0), ("B", "C", 1001.0), ("A", "D", 1.0)]
    with mock.patch.object(planner, "_ARCS_UP_TO_VARIABLES", arcs_up_to):
        result = _plan(nodes, links, [("A", "B", 1.0), ("B", "C", 499.0)])
    assert result.common_scale == pytest.approx(2.0, rel=1e-9)
    assert set(result.bottlenecks) == {"L0", "L1"}


def test_satellite_pass_keys_add_up_to_each_pass_and_peak_at_the_least_loss() -> None:
    from pathlib import Path

    from qkd.network.loader import load_network
    from qkd.network.planner import link_rates

    root = Path(__file__).resolve().parents[2]
    network = load_network(root / "docs" / "networks" / "satellite-relay.toml")
    (rate,) = link_rates(network)
    assert len(rate.pass_keys) == len(rate.windows) > 0
    totals: dict[str, float] = {}
    for (station, start, end), (name, first, step, keys) in zip(
        rate.windows, rate.pass_keys, strict=True
    ):
        assert (name, first) == (station, start)
        # One step per track sample of the pass, each covering [t, t + step).
        assert len(keys) == round((end - start) / step) + 1
        assert all(k >= 0 for k in keys)
        # Loss falls towards the middle of a pass and rises after: the key per step rises,
        # then falls (one peak, not at an edge). A low pass whose finite key is empty has
        # nothing to spread: all its steps are 0.
        peak = max(range(len(keys)), key=keys.__getitem__)
        assert 0 < peak < len(keys) - 1 or not any(keys)
        totals[station] = totals.get(station, 0.0) + sum(keys)
    # The link's rate is the smaller station's key over the link's days.
    seconds = network.links[0].days * 86_400.0  # type: ignore[union-attr]
    assert rate.key_rate_bps == pytest.approx(min(totals.values()) / seconds, rel=1e-12)

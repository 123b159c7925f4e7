"""The network over time (qkd.network.simulation): pools, draws, windows, failures, Eve."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from qkd.network.events import LinkEvent
from qkd.network.loader import load_network, network_from_dict
from qkd.network.planner import LinkRate
from qkd.network.simulation import simulate_network

ROOT = Path(__file__).resolve().parents[2]


def _net(
    nodes: dict[str, str],
    links: list[tuple[str, str, float]],
    demands: list[tuple[str, str, float]],
) -> Any:
    return network_from_dict(
        {
            "network": {"name": "test"},
            "nodes": [{"name": n, "kind": k} for n, k in nodes.items()],
            "links": [
                {"id": f"{a}-{b}", "a": a, "b": b, "kind": "fixed", "key_rate_bps": r}
                for a, b, r in links
            ],
            "demands": [{"from": a, "to": b, "rate_bps": r} for a, b, r in demands],
        }
    )


def _demand(sim: Any, a: str, b: str) -> Any:
    return next(d for d in sim.demands if (d.from_, d.to) == (a, b))


def _link(sim: Any, link_id: str) -> Any:
    return next(lk for lk in sim.links if lk.id == link_id)


@pytest.mark.parametrize(("rate", "demand"), [(100.0, 40.0), (100.0, 250.0)])
def test_one_link_follows_the_closed_form(rate: float, demand: float) -> None:
    net = _net({"A": "endpoint", "B": "endpoint"}, [("A", "B", rate)], [("A", "B", demand)])
    step = 10.0
    sim = simulate_network(net, days=0.5, step_s=step, samples=10_000)
    link, d = sim.links[0], sim.demands[0]
    seconds = sim.steps * step
    times = np.array(link.times_s)
    levels = np.array(link.levels_bits)
    if demand <= rate:
        # The pool grows at rate - demand; the demand gets all it asks for.
        assert levels == pytest.approx((rate - demand) * times, rel=1e-9)
        assert d.delivered_bits == pytest.approx(demand * seconds, rel=1e-9)
        assert d.starved == ()
    else:
        # The demand takes every bit as it arrives; the pool stays empty; starved throughout.
        assert levels == pytest.approx(np.zeros_like(times), abs=1e-6)
        assert d.delivered_bits == pytest.approx(rate * seconds, rel=1e-9)
        assert d.starved == ((0.0, seconds),)
        assert d.starved_s == seconds


def test_conservation_on_every_link_with_shared_pools() -> None:
    # A ring where three demands share links, one of them oversubscribed, and a failure.
    net = _net(
        {"A": "trusted", "B": "trusted", "C": "trusted", "D": "trusted"},
        [("A", "B", 300.0), ("B", "C", 120.0), ("C", "D", 500.0), ("D", "A", 80.0)],
        [("A", "C", 100.0), ("B", "D", 90.0), ("A", "D", 20.0)],
    )
    events = [LinkEvent("B-C", 3_000.0, 9_000.0, "failure")]
    sim = simulate_network(net, days=0.25, step_s=30.0, events=events, samples=100)
    for link in sim.links:
        assert link.final_bits == pytest.approx(link.filled_bits - link.drawn_bits, abs=1e-6)
        assert link.min_bits >= 0.0
        assert link.levels_bits[-1] == pytest.approx(link.final_bits, abs=1e-6)
    delivered = sum(d.delivered_bits for d in sim.demands)
    assert 0 < delivered <= sum(d.requested_bits for d in sim.demands)
    # Key only ever leaves a pool for a demand: what all links lost is a multiple of hops.
    assert sum(lk.drawn_bits for lk in sim.links) >= delivered


def test_oversubscribed_link_shares_in_proportion_to_requests() -> None:
    net = _net(
        {"A": "trusted", "B": "trusted", "X": "endpoint", "Y": "endpoint"},
        [("X", "A", 1e6), ("Y", "A", 1e6), ("A", "B", 100.0)],
        [("X", "B", 150.0), ("Y", "B", 50.0)],
    )
    sim = simulate_network(net, days=0.1, step_s=60.0)
    x, y = _demand(sim, "X", "B"), _demand(sim, "Y", "B")
    seconds = sim.steps * 60.0
    assert x.delivered_bits == pytest.approx(75.0 * seconds, rel=1e-9)
    assert y.delivered_bits == pytest.approx(25.0 * seconds, rel=1e-9)
    assert x.starved_s == y.starved_s == seconds


def test_failure_reroutes_and_recovers() -> None:
    net = _net(
        {"A": "endpoint", "B": "trusted", "C": "trusted", "D": "endpoint"},
        [("A", "B", 1000.0), ("B", "D", 1000.0), ("A", "C", 500.0), ("C", "D", 500.0)],
        [("A", "D", 200.0)],
    )
    events = [LinkEvent("B-D", 3_600.0, 7_200.0, "failure")]
    sim = simulate_network(net, days=0.25, step_s=60.0, events=events)
    d = sim.demands[0]
    assert [(r.from_s, r.path) for r in d.routes] == [
        (0.0, ("A", "B", "D")),
        (3_600.0, ("A", "C", "D")),
        (7_200.0, ("A", "B", "D")),
    ]
    assert d.starved == ()
    assert d.delivered_bits == pytest.approx(200.0 * sim.steps * 60.0, rel=1e-9)
    cut = _link(sim, "B-D")
    assert cut.down == ((3_600.0, 7_200.0, "failure"),)
    # The cut link neither filled nor served while down: 1 h of 6 at 1000 bit/s.
    assert cut.filled_bits == pytest.approx(1000.0 * (6 - 1) * 3_600.0, rel=1e-9)
    assert sim.epochs == 3


def test_eve_stops_a_link_and_a_demand_without_another_path_starves() -> None:
    net = _net({"A": "endpoint", "B": "endpoint"}, [("A", "B", 1000.0)], [("A", "B", 100.0)])
    events = [LinkEvent("A-B", 600.0, 1_200.0, "eve")]
    sim = simulate_network(net, days=1 / 24, step_s=60.0, events=events)
    d, link = sim.demands[0], sim.links[0]
    assert d.starved == ((600.0, 1_200.0),)
    assert [r.path for r in d.routes] == [("A", "B"), (), ("A", "B")]
    assert link.filled_bits == pytest.approx(1000.0 * 3_000.0, rel=1e-9)
    assert d.delivered_bits == pytest.approx(100.0 * 3_000.0, rel=1e-9)
    # The stored key waits out the alarm: the pool at its end is what it was at its start.
    times = np.array(link.times_s)
    levels = np.array(link.levels_bits)
    assert levels[times == 1_200.0] == pytest.approx(levels[times == 600.0])


def test_satellite_link_fills_only_inside_pass_windows() -> None:
    net = network_from_dict(
        {
            "network": {"name": "sat"},
            "nodes": [
                {"name": n, "kind": "ground-station", "latitude_deg": 0, "longitude_deg": lon}
                for n, lon in (("P", 0), ("Q", 90))
            ],
            "links": [
                {
                    "id": "P-Q",
                    "a": "P",
                    "b": "Q",
                    "kind": "satellite",
                    "altitude_km": 500,
                    "inclination_deg": 97.4,
                }
            ],
            "demands": [{"from": "P", "to": "Q", "rate_bps": 1.0}],
        }
    )
    # Given windows, so that the test does not depend on the orbit: P passes at 1000-1100 s,
    # Q at 3000-3200 s; the relayed key exists only once both have passed.
    rate = LinkRate(
        "P-Q", "satellite", "P", "Q", 3.0, (("P", 1000.0, 1100.0), ("Q", 3000.0, 3200.0))
    )
    sim = simulate_network(net, days=0.1, step_s=50.0, rates=[rate], samples=10_000)
    link, d = sim.links[0], sim.demands[0]
    times = np.array(link.times_s)
    levels = np.array(link.levels_bits)
    delivered = link.drawn_bits
    assert levels[times <= 3000.0] == pytest.approx(0.0)
    # Q's share arrives during its window; nothing after 3200 s but the draws.
    total = 3.0 * 86_400.0
    assert link.filled_bits == pytest.approx(total, rel=1e-9)
    after = levels[times >= 3200.0]
    assert np.all(np.diff(after) <= 1e-9)
    assert d.starved[0] == (0.0, 3_000.0)
    assert delivered == pytest.approx(d.delivered_bits)


def test_example_networks_simulate() -> None:
    for name in ("metro-ring", "backbone"):
        net = load_network(ROOT / "docs" / "networks" / f"{name}.toml")
        sim = simulate_network(net, days=0.5, step_s=120.0)
        assert len(sim.demands) == len(net.demands)
        for link in sim.links:
            assert math.isclose(link.final_bits, link.filled_bits - link.drawn_bits, abs_tol=1e-3)
    backbone = simulate_network(load_network(ROOT / "docs/networks/backbone.toml"), days=0.25)
    # Feasible along single paths: nobody starves.
    assert all(d.starved == () for d in backbone.demands)
    # The metro ring is feasible only with demands split over both sides of the ring, as
    # the simulation now relays them: nobody starves either.
    ring = simulate_network(load_network(ROOT / "docs/networks/metro-ring.toml"), days=0.25)
    assert all(d.starved == () for d in ring.demands)
    assert any(len(r.paths) > 1 for d in ring.demands for r in d.routes)


def test_bad_arguments_raise() -> None:
    from qkd import QKDError

    net = _net({"A": "endpoint", "B": "endpoint"}, [("A", "B", 1.0)], [])
    for kwargs in ({"days": 0}, {"days": 1, "step_s": -1}, {"days": math.inf}):
        with pytest.raises(QKDError):
            simulate_network(net, **kwargs)
    with pytest.raises(QKDError, match="link 'nope'"):
        simulate_network(net, days=1, events=[LinkEvent("nope", 0.0, 1.0, "eve")])


def test_the_example_event_file_reroutes_the_metro_ring() -> None:
    from qkd.network.events import load_events

    net = load_network(ROOT / "docs" / "networks" / "metro-ring.toml")
    events = load_events(ROOT / "docs" / "networks" / "events" / "metro-ring.toml", net)
    assert [(e.link, e.kind) for e in events] == [("B-C", "failure"), ("D-E", "eve")]
    sim = simulate_network(net, days=1, step_s=600.0, events=events)
    a_to_c = _demand(sim, "A", "C")
    assert [r.path for r in a_to_c.routes] == [
        ("A", "B", "C"),
        ("A", "F", "E", "D", "C"),
        ("A", "B", "C"),
    ]
    assert sim.epochs == 5


def test_chunks_do_not_change_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    from qkd.network import simulation

    net = _net(
        {"A": "trusted", "B": "trusted", "C": "trusted", "D": "trusted"},
        [("A", "B", 300.0), ("B", "C", 120.0), ("C", "D", 500.0), ("D", "A", 80.0)],
        [("A", "C", 100.0), ("B", "D", 90.0), ("A", "D", 20.0)],
    )
    events = [LinkEvent("B-C", 3_000.0, 9_000.0, "failure"), LinkEvent("D-A", 500.0, 900.0, "eve")]
    whole = simulate_network(net, days=0.25, step_s=20.0, events=events)
    monkeypatch.setattr(simulation, "_CHUNK_CELLS", 1)  # chunks of 64 steps
    pieces = simulate_network(net, days=0.25, step_s=20.0, events=events)
    for a, b in zip(whole.demands, pieces.demands, strict=True):
        assert b.delivered_bits == pytest.approx(a.delivered_bits, rel=1e-9)
        assert b.starved == a.starved
        assert b.pool_min_bits == pytest.approx(a.pool_min_bits, abs=1e-6)
    for la, lb in zip(whole.links, pieces.links, strict=True):
        assert lb.levels_bits == pytest.approx(la.levels_bits, rel=1e-9, abs=1e-6)


# ----------------------------------------------------------------------------- multi-path,
# pool capacity, work-conserving sharing, satellite fills per step


def _two_paths(rate_b: float, rate_d: float, demand: float) -> Any:
    return _net(
        {"A": "endpoint", "B": "trusted", "C": "endpoint", "D": "trusted"},
        [("A", "B", rate_b), ("B", "C", rate_b), ("A", "D", rate_d), ("D", "C", rate_d)],
        [("A", "C", demand)],
    )


def test_a_demand_is_split_over_paths_as_the_joint_lp_splits_it() -> None:
    # Paths of 100 and 50 bit/s, 120 wanted: the plan's common scale is 150 / 120, and at
    # that scale both paths are full, so the shares are 2/3 and 1/3: 80 and 40 bit/s.
    sim = simulate_network(_two_paths(100.0, 50.0, 120.0), days=0.1, step_s=60.0)
    d = sim.demands[0]
    seconds = sim.steps * 60.0
    assert d.starved == ()
    assert d.delivered_bits == pytest.approx(120.0 * seconds, rel=1e-9)
    (route,) = d.routes
    shares = dict(route.paths)
    assert shares[("A", "B", "C")] == pytest.approx(2 / 3, rel=1e-6)
    assert shares[("A", "D", "C")] == pytest.approx(1 / 3, rel=1e-6)
    assert route.path == ("A", "B", "C")
    for link_id, spare in (("A-B", 20.0), ("B-C", 20.0), ("A-D", 10.0), ("D-C", 10.0)):
        assert _link(sim, link_id).final_bits == pytest.approx(spare * seconds, rel=1e-6)


def test_a_share_that_a_demand_cannot_use_goes_to_the_others() -> None:
    # X -> B is held to 30 bit/s by X-A; of A-B's 100 bit/s, Y -> B takes the other 70
    # (fixed shares in proportion to requests would have given it 40).
    net = _net(
        {"A": "trusted", "B": "endpoint", "X": "endpoint", "Y": "endpoint"},
        [("X", "A", 30.0), ("Y", "A", 1e6), ("A", "B", 100.0)],
        [("X", "B", 150.0), ("Y", "B", 100.0)],
    )
    sim = simulate_network(net, days=0.1, step_s=60.0)
    seconds = sim.steps * 60.0
    assert _demand(sim, "X", "B").delivered_bits == pytest.approx(30.0 * seconds, rel=1e-9)
    assert _demand(sim, "Y", "B").delivered_bits == pytest.approx(70.0 * seconds, rel=1e-9)
    assert _link(sim, "A-B").final_bits == pytest.approx(0.0, abs=1e-6)


def test_a_full_pool_discards_what_it_cannot_hold() -> None:
    data = {
        "network": {"name": "capped"},
        "nodes": [{"name": "A", "kind": "endpoint"}, {"name": "B", "kind": "endpoint"}],
        "links": [
            {"id": "A-B", "a": "A", "b": "B", "kind": "fixed", "key_rate_bps": 100.0,
             "pool_bits": 6_000.0},
        ],
        "demands": [{"from": "A", "to": "B", "rate_bps": 40.0}],
    }  # fmt: skip
    sim = simulate_network(network_from_dict(data), days=1 / 24, step_s=10.0, samples=10_000)
    link = sim.links[0]
    times = np.array(link.times_s)
    assert link.levels_bits == pytest.approx(np.minimum(6_000.0, 60.0 * times), rel=1e-9)
    assert link.capacity_bits == 6_000.0
    assert link.final_bits == pytest.approx(6_000.0)
    assert link.discarded_bits == pytest.approx(60.0 * 3_600.0 - 6_000.0, rel=1e-9)
    assert link.final_bits == pytest.approx(
        link.filled_bits - link.drawn_bits - link.discarded_bits, abs=1e-6
    )
    assert sim.demands[0].starved == ()


def test_the_default_pool_holds_one_day_of_key() -> None:
    net = _net({"A": "endpoint", "B": "endpoint"}, [("A", "B", 10.0)], [])
    sim = simulate_network(net, days=2, step_s=600.0)
    link = sim.links[0]
    assert link.capacity_bits == 10.0 * 86_400.0
    assert link.max_bits == pytest.approx(10.0 * 86_400.0)
    assert link.discarded_bits == pytest.approx(10.0 * 86_400.0, rel=1e-9)


def test_stored_key_carries_a_demand_through_a_failure_until_it_runs_dry() -> None:
    # Two paths of 100 bit/s, 150 wanted: 75 over each, so each pool gains 25 bit/s. At
    # 2,000 s A-D fails and all 150 go over A-B-C: its pools (50,000 bits) drain at 50 bit/s
    # for 1,000 s, then the demand gets the link rate, 100 bit/s, until A-D is back at 5,000 s.
    events = [LinkEvent("A-D", 2_000.0, 5_000.0, "failure")]
    sim = simulate_network(
        _two_paths(100.0, 100.0, 150.0), days=7_200 / 86_400, step_s=10.0, events=events
    )
    d = sim.demands[0]
    assert d.starved == ((3_000.0, 5_000.0),)
    expected = 150.0 * 7_200.0 - 50.0 * 2_000.0
    assert d.delivered_bits == pytest.approx(expected, rel=1e-9)
    assert _link(sim, "A-B").min_bits == pytest.approx(0.0, abs=1e-6)
    assert [r.paths for r in d.routes][1] == ((("A", "B", "C"), 1.0),)


def test_satellite_fills_by_the_key_of_each_step_of_each_pass() -> None:
    net = network_from_dict(
        {
            "network": {"name": "sat"},
            "nodes": [
                {"name": n, "kind": "ground-station", "latitude_deg": 0, "longitude_deg": lon}
                for n, lon in (("P", 0), ("Q", 90))
            ],
            "links": [
                {"id": "P-Q", "a": "P", "b": "Q", "kind": "satellite", "altitude_km": 500,
                 "inclination_deg": 97.4},
            ],
            "demands": [{"from": "P", "to": "Q", "rate_bps": 1e-6}],
        }
    )  # fmt: skip
    # P: 10 bits over 1000-1050 s, 30 over 1050-1100 s; Q: 40 over 3000-3100, 20 over
    # 3100-3200. The relayed key is min(C_P, C_Q): 0 until 3000 s, 20 at 3050, 40 at 3100
    # and after (P has only 40).
    rate = LinkRate(
        "P-Q", "satellite", "P", "Q", 40.0 / 86_400.0,
        (("P", 1000.0, 1100.0), ("Q", 3000.0, 3200.0)),
        (("P", 1000.0, 50.0, (10.0, 30.0)), ("Q", 3000.0, 100.0, (40.0, 20.0))),
    )  # fmt: skip
    sim = simulate_network(net, days=0.05, step_s=50.0, rates=[rate], samples=10_000)
    link = sim.links[0]
    level = dict(zip(link.times_s, link.levels_bits, strict=True))
    drawn = 1e-6 * 50.0  # per step, from the first step with key on
    assert level[3000.0] == pytest.approx(0.0, abs=1e-9)
    assert level[3050.0] == pytest.approx(20.0 - drawn, abs=1e-9)
    assert level[3100.0] == pytest.approx(40.0 - 2 * drawn, abs=1e-9)
    assert link.filled_bits == pytest.approx(40.0, rel=1e-12)


def test_water_fill_is_weighted_max_min_fair() -> None:
    from qkd.network.simulation import _water_fill

    # Two links; path 0 uses both, path 1 link 0, path 2 link 1.
    m = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    q = np.array([10.0, 10.0, 30.0])
    x = _water_fill(m, q, np.array([10.0, 20.0]))
    # Link 0 binds first at theta = 1/2 (paths 0 and 1 get 5 each); link 1 then has 15 left
    # for path 2 (30 wanted): half again, which is its own theta.
    assert x == pytest.approx([5.0, 5.0, 15.0])
    assert _water_fill(m, q, np.array([np.inf, np.inf])) == pytest.approx(q)


def test_a_demand_far_below_the_others_still_gets_its_path() -> None:
    # 1e-6 bit/s over a 1e-144 bit/s link beside 1e15 over 1e15: the joint LP cannot resolve
    # the small one's flow (1e-21 of the largest load), so it keeps its widest path whole and
    # gets every bit that link makes.
    net = _net(
        {"A": "endpoint", "B": "trusted", "C": "endpoint"},
        [("A", "B", 5e-324), ("B", "C", 1e15), ("A", "C", 1e-144)],
        [("A", "C", 1e-6), ("B", "C", 1e15)],
    )
    sim = simulate_network(net, days=0.01, step_s=60.0)
    small, large = _demand(sim, "A", "C"), _demand(sim, "B", "C")
    assert small.delivered_bits == pytest.approx(1e-144 * sim.steps * 60.0, rel=1e-9)
    assert large.delivered_bits == pytest.approx(1e15 * sim.steps * 60.0, rel=1e-9)
    assert sim.to_dict()["demands"][0]["routes"][0]["path"] == ["A", "C"]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.sampled_from([0.0, 5e-324, 1e-310, 1e-300, 1e-6, 1.0, 1e15]), min_size=4, max_size=4
    ),
    st.lists(st.sampled_from([1e-6, 1.0, 1e15]), min_size=2, max_size=2),
    st.sampled_from([(1e-4, 1.0), (0.05, 60.0), (2.0, 3600.0)]),
    st.booleans(),
)
@example(rates=[5e-324, 0.0, 0.0, 0.0], wanted=[1e-6, 1e15], timing=(1e-4, 1.0), eve=False)
def test_extreme_valid_figures_simulate_without_error(
    rates: list[float], wanted: list[float], timing: tuple[float, float], eve: bool
) -> None:
    # Rates down to subnormal, up to 1e15, with an outage: the run completes, and every
    # figure is finite and within what the links made. (A subnormal rate once made the
    # routing LP's units 0/0.)
    links = [("A", "B", rates[0]), ("B", "C", rates[1]), ("A", "C", rates[2]), ("C", "D", rates[3])]
    net = _net(
        dict.fromkeys("ABCD", "trusted"), links, [("A", "C", wanted[0]), ("B", "D", wanted[1])]
    )
    days, step = timing
    event = LinkEvent("A-B", 0.0, days * 43_200.0, "eve" if eve else "failure")
    sim = simulate_network(net, days=days, step_s=step, events=[event], samples=20)
    seconds = sim.steps * step
    for d in sim.demands:
        assert 0.0 <= d.delivered_bits <= d.requested_bps * seconds * (1 + 1e-9)
    for link in sim.links:
        assert all(math.isfinite(x) and x >= 0.0 for x in link.levels_bits)
    json.dumps(sim.to_dict(), allow_nan=False)

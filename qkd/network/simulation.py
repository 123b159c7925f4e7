"""Step a trusted-node QKD network in time: key pools per link, demands drawing through relay
paths, link failures and Eve.

Hazmat: figures for planning, not key material. Needs the ``network`` extra (networkx, scipy)
for the link rates and routes of :mod:`qkd.network.planner`.

Theory of operation
-------------------
Time runs in ``n = ceil(T / dt)`` steps of ``dt`` seconds; step ``k`` covers
``[k dt, (k+1) dt)``. Nothing here is random: the same inputs give the same figures.

- **Fills.** Every link has a key pool, empty at t = 0, that holds at most ``pool_bits``
  (the link's field; by default one day of its key at its planned rate, ``86,400 R``). A
  link with key rate ``R`` (the planner's :func:`~qkd.network.planner.link_rates`) adds
  ``R dt`` in each step in which it is up. A satellite link (a trusted satellite relaying
  between two ground stations, as Micius did) fills only during passes, by the key of each
  step of each pass (``LinkRate.pass_keys``: the loss of that step, so a pass gives most near
  its highest elevation); each station's key by time t is ``C_a(t)``, and the relayed key is
  ``C(t) = min(C_a(t), C_b(t))`` (the satellite can XOR a key bit to the far station only
  once it shares a key bit with both). The passes repeat with the link's period ``P`` (its
  ``days``). A step's fill is ``C((k+1) dt) - C(k dt)``, so a window edge inside a step gives
  a partial fill.
- **Events.** A link is down in every step that overlaps one of its events. ``failure``: the
  link is cut. ``eve``: an eavesdropper raises the link's QBER alarm, and the link delivers
  no key while she is there. A down link neither fills nor serves relays; its pool keeps the
  key it holds (stored key was distilled before the alarm and stays secret) for when it is
  back.
- **Routing.** Between consecutive event edges the set of usable links is fixed: a routing
  *epoch*. In each epoch every demand is split over several paths as the plan's joint LP
  splits it (:func:`~qkd.network.planner.route_demands`: the multi-commodity optimum at the
  largest common scale, capped at 1, that uses the least key; endpoints relay for no one).
  A path with share ``phi`` asks for ``phi q_d`` per step, ``q_d = r_d dt``. A demand whose
  paths lose a link is re-routed; routes are computed once per distinct set of usable
  links.
- **Draws.** Relaying ``x`` bits over a path one-time-pads them hop by hop, consuming ``x``
  bits on every hop (ITU-T Y.3803; DESIGN.md "QKD networks"). Parallel links of a hop share
  a path's hop in proportion to their key rates (``w_lp = R_l / sum R``).
- **Sharing, work-conserving.** In each step, link l can give ``A_l`` = its pool plus the
  step's fill. The paths' draws ``x_p <= phi_p q_d`` are the weighted max-min fair
  allocation (progressive filling: every path gets the same fraction ``theta`` of its
  request, ``theta`` rising until a link runs out; the paths through that link keep their
  fraction, the others rise further; Bertsekas and Gallager, "Data Networks", 6.5.2). When
  a link can serve every path, each gets its request; when it cannot, they get it in
  proportion to their requests, and a share that a path cannot use because another link
  holds it back is taken by the others (work-conserving, unlike fixed reservations).
  Pools then hold ``min(pool_bits, pool + fill - draw)``; what is above ``pool_bits`` is
  discarded.
- **Vectorised.** The allocation changes only when a pool runs dry or an empty pool's fill
  changes. While neither happens (a *regime*), the draws per step are constant, so the
  levels are a cumulative sum, capped above by a running maximum (``L = S -
  max(0, cummax(S - cap))``, the reflected walk); the first step at which the uncapped
  level would go below zero ends the regime, and that step is allocated on its own with
  the exact amounts available. Empty pools serve at most their fill in a regime; pools with
  key serve without limit until they run dry. So each epoch costs a few numpy operations
  per regime (in chunks of bounded memory), and Python loops run over epochs, chunks and
  regimes, never over the steps of a regime.
- **Pools.** On every link at every step, ``level = filled - drawn - discarded``; no key is
  lost or made but what a full pool discards.
- **Reports.** Per demand: the key delivered, the intervals in which a step delivered less
  than ``q_d (1 - 1e-9)`` (starved; also every step with no path), and the lowest pool on its
  paths at each step, its minimum and time mean over the steps it had a path. Per link: the
  key filled, drawn and discarded, the final, lowest and highest levels, when it was down,
  and its level at most ``samples`` evenly spaced step ends (for plots).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qkd._errors import QKDError
from qkd.network.events import LinkEvent
from qkd.network.model import Network, SatelliteLink
from qkd.network.planner import TOLERANCE, LinkRate, capacities, link_rates, route_demands

__all__ = [
    "DEFAULT_POOL_S",
    "DemandTimeline",
    "LinkTimeline",
    "Route",
    "Simulation",
    "simulate_network",
]

# A link's pool holds, by default, this many seconds of its key at its planned rate.
DEFAULT_POOL_S = 86_400.0
# Step-levels held in memory at once (links x steps of a chunk): 2 MB of float64 per array
# keeps a chunk in cache, which measured 3-4x faster than 32 MB on the backbone example.
_CHUNK_CELLS = 250_000


@dataclass(frozen=True)
class Route:
    """The paths a demand takes from ``from_s`` on, each with its share of the demand
    (``paths`` empty: no path, the demand is cut off); ``path`` is the one of largest share."""

    from_s: float
    path: tuple[str, ...]
    paths: tuple[tuple[tuple[str, ...], float], ...] = ()


@dataclass(frozen=True)
class DemandTimeline:
    """One demand over the whole run."""

    from_: str
    to: str
    requested_bps: float
    requested_bits: float
    delivered_bits: float
    starved: tuple[tuple[float, float], ...]
    starved_s: float
    pool_min_bits: float | None
    pool_mean_bits: float | None
    routes: tuple[Route, ...]


@dataclass(frozen=True)
class LinkTimeline:
    """One link over the whole run; ``levels_bits`` at ``times_s`` (downsampled)."""

    id: str
    kind: str
    key_rate_bps: float
    filled_bits: float
    drawn_bits: float
    final_bits: float
    min_bits: float
    max_bits: float
    down: tuple[tuple[float, float, str], ...]
    times_s: tuple[float, ...]
    levels_bits: tuple[float, ...]
    capacity_bits: float = math.inf
    discarded_bits: float = 0.0


@dataclass(frozen=True)
class Simulation:
    """Everything ``agile net simulate`` prints."""

    name: str
    days: float
    step_s: float
    steps: int
    epochs: int
    demands: tuple[DemandTimeline, ...]
    links: tuple[LinkTimeline, ...]

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``agile net simulate --json``."""
        return {
            "network": self.name,
            "days": self.days,
            "step_s": self.step_s,
            "steps": self.steps,
            "epochs": self.epochs,
            "demands": [
                {
                    "from": d.from_,
                    "to": d.to,
                    "requested_bps": d.requested_bps,
                    "requested_bits": d.requested_bits,
                    "delivered_bits": d.delivered_bits,
                    "delivered_fraction": (
                        d.delivered_bits / d.requested_bits if d.requested_bits else None
                    ),
                    "starved_s": d.starved_s,
                    "starved": [{"start_s": a, "end_s": b} for a, b in d.starved],
                    "pool_min_bits": d.pool_min_bits,
                    "pool_mean_bits": d.pool_mean_bits,
                    "routes": [
                        {
                            "from_s": r.from_s,
                            "path": list(r.path),
                            "paths": [{"path": list(p), "share": w} for p, w in r.paths],
                        }
                        for r in d.routes
                    ],
                }
                for d in self.demands
            ],
            "links": [
                {
                    "id": lk.id,
                    "kind": lk.kind,
                    "key_rate_bps": lk.key_rate_bps,
                    "capacity_bits": lk.capacity_bits,
                    "filled_bits": lk.filled_bits,
                    "drawn_bits": lk.drawn_bits,
                    "discarded_bits": lk.discarded_bits,
                    "final_bits": lk.final_bits,
                    "min_bits": lk.min_bits,
                    "max_bits": lk.max_bits,
                    "down": [{"start_s": a, "end_s": b, "kind": k} for a, b, k in lk.down],
                    "levels": {"times_s": list(lk.times_s), "bits": list(lk.levels_bits)},
                }
                for lk in self.links
            ],
        }


# ----------------------------------------------------------------------------- fills


class _Fill:
    """``C(t)``: the key a link has delivered by time t when always up (module docstring).

    A satellite station's key is a list of segments ``[start, end)`` with the bits each
    brings, evenly over the segment: the steps of ``LinkRate.pass_keys``, or, for rates
    given without them, each window with the station's share of ``R P`` spread evenly.
    """

    def __init__(self, rate: LinkRate, period_s: float | None) -> None:
        self.rate = rate.key_rate_bps
        self.period = period_s
        self.stations: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]] = []
        if period_s is None:
            return
        for station in (rate.a, rate.b):
            segments: list[tuple[float, float, float]] = []
            if rate.pass_keys:
                for name, first, step, keys in rate.pass_keys:
                    if name == station:
                        segments += [
                            (first + i * step, first + (i + 1) * step, b)
                            for i, b in enumerate(keys)
                            if b > 0
                        ]
            else:
                spans = [(s, e) for name, s, e in rate.windows if name == station and e > s]
                seconds = sum(e - s for s, e in spans)
                segments = [(s, e, self.rate * period_s * (e - s) / seconds) for s, e in spans]
            segments.sort()
            starts = np.array([a for a, _, _ in segments], dtype=np.float64)
            ends = np.array([b for _, b, _ in segments], dtype=np.float64)
            bits = np.array([c for _, _, c in segments], dtype=np.float64)
            before = np.concatenate([[0.0], np.cumsum(bits)])
            self.stations.append((starts, ends, bits, before, float(before[-1])))

    def __call__(self, t: np.ndarray) -> np.ndarray:
        if self.period is None:
            return self.rate * t
        if self.rate <= 0 or any(station[-1] <= 0 for station in self.stations):
            return np.zeros_like(t)
        out = np.full_like(t, np.inf)
        turns, within = np.divmod(t, self.period)
        for starts, ends, bits, before, total in self.stations:
            i = np.searchsorted(starts, within, side="right") - 1
            j = np.maximum(i, 0)
            part = np.clip((within - starts[j]) / (ends[j] - starts[j]), 0.0, 1.0)
            covered = np.where(i >= 0, before[j] + bits[j] * part, 0.0)
            out = np.minimum(out, turns * total + covered)
        return out


# ----------------------------------------------------------------------------- sharing


def _water_fill(m: np.ndarray, q: np.ndarray, avail: np.ndarray) -> np.ndarray:
    """Weighted max-min fair draws ``x <= q`` of the paths (columns of ``m``, the key each
    takes from each link per bit) within ``avail`` per link (``inf``: no limit)."""
    x = np.zeros_like(q)
    active = q > 0
    used = np.zeros(m.shape[0])
    while active.any():
        asked = m[:, active] @ q[active]
        room = avail - used
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(asked > 0, room / asked, np.inf)
        theta = float(ratio.min())
        if theta >= 1.0:
            x[active] = q[active]
            break
        theta = max(theta, 0.0)
        tight = ratio <= theta * (1.0 + 1e-12) + 1e-300
        freeze = active & (m[tight].sum(axis=0) > 0)
        x[freeze] = theta * q[freeze]
        used += m[:, freeze] @ x[freeze]
        active &= ~freeze
    return x


@dataclass
class _Run:
    """What one stretch of steps did: levels per link and step, key drawn and discarded per
    link, key delivered per demand and step."""

    levels: np.ndarray
    drawn: np.ndarray
    got: np.ndarray
    discarded: np.ndarray


def _share_steps(
    pool: np.ndarray,
    cum: np.ndarray,
    cap: np.ndarray,
    *,
    m: np.ndarray,
    q: np.ndarray,
    owner: np.ndarray,
    n_demands: int,
) -> _Run:
    """Step the pools by regimes (module docstring) through the fills whose running sums are
    ``cum`` (links x (steps + 1), from 0)."""
    n_links, steps = cum.shape[0], cum.shape[1] - 1
    levels = np.empty((n_links, steps))
    drawn = np.zeros(n_links)
    got = np.zeros((n_demands, steps))
    discarded = np.zeros(n_links)
    to_demand = np.zeros((n_demands, q.size))
    to_demand[owner, np.arange(q.size)] = 1.0
    asked = m @ q
    level = pool.copy()
    j = 0
    while j < steps:
        fill = cum[:, j + 1] - cum[:, j]
        tol = 1e-9 * (asked + fill) + 1e-9
        empty = level <= tol
        x = _water_fill(m, q, np.where(empty, fill, np.inf))
        draw = m @ x
        run = steps - j
        if empty.any():
            ahead = np.diff(cum[empty, j:], axis=1)
            same = np.all(ahead == ahead[:, :1], axis=0)
            run = int(np.argmin(same)) if not same.all() else run
        # The uncapped levels: start + fills so far - the constant draw per step.
        walk = (level - cum[:, j])[:, None] + cum[:, j + 1 : j + run + 1]
        walk -= draw[:, None] * np.arange(1, run + 1)
        # Most stretches reach no pool's limit and drain none: skip those passes then.
        if (walk.max(axis=1) > cap).any():
            over = np.maximum(np.maximum.accumulate(walk - cap[:, None], axis=1), 0.0)
            capped = walk - over
        else:
            over, capped = np.zeros((n_links, 1)), walk
        if (capped.min(axis=1) < -tol).any():
            dry = np.flatnonzero((capped < -tol[:, None]).any(axis=0))
            ok = int(dry[0])
        else:
            ok = run
        if ok == 0:
            # The step in which a pool runs dry: allocate exactly what is there.
            x = _water_fill(m, q, np.maximum(level, 0.0) + fill)
            draw = m @ x
            after = level + fill - draw
            spill = np.maximum(after - cap, 0.0)
            level = after - spill
            levels[:, j] = level
            drawn += draw
            got[:, j] = to_demand @ x
            discarded += spill
            j += 1
            continue
        levels[:, j : j + ok] = capped[:, :ok]
        drawn += draw * ok
        got[:, j : j + ok] = (to_demand @ x)[:, None]
        discarded += over[:, min(ok, over.shape[1]) - 1]
        level = capped[:, ok - 1].copy()
        j += ok
    return _Run(levels, drawn, got, discarded)


# ----------------------------------------------------------------------------- the run


@dataclass
class _DemandState:
    delivered: float = 0.0
    starved: list[list[int]] = field(default_factory=list)
    pool_min: float = math.inf
    pool_sum: float = 0.0
    pool_steps: int = 0


@dataclass(frozen=True)
class _Routing:
    """An epoch's routes: per demand its paths and shares; per path its demand, share and
    the key it takes from each link per bit (``matrix``, links x paths)."""

    paths: list[list[tuple[tuple[str, ...], float]]]
    owner: np.ndarray
    share: np.ndarray
    matrix: np.ndarray
    links_of: list[list[int]]


def simulate_network(
    network: Network,
    *,
    days: float,
    step_s: float = 60.0,
    events: Sequence[LinkEvent] = (),
    rates: Sequence[LinkRate] | None = None,
    samples: int = 500,
    progress: Callable[[str, float], None] | None = None,
) -> Simulation:
    """Step ``network`` through ``days`` days in steps of ``step_s`` (module docstring).

    ``rates`` defaults to the planner's :func:`~qkd.network.planner.link_rates`; pass them to
    reuse one computation. ``progress(stage, fraction)`` is called as the run advances.

    Example::

        >>> net = load_network("docs/networks/metro-ring.toml")  # doctest: +SKIP
        >>> simulate_network(net, days=1).demands[0].starved_s  # doctest: +SKIP
        0.0
    """
    if not (math.isfinite(days) and days > 0):
        raise QKDError(f"days must be a positive number (got {days!r})")
    if not (math.isfinite(step_s) and step_s > 0):
        raise QKDError(f"step_s must be a positive number of seconds (got {step_s!r})")
    if samples < 2:
        raise QKDError("samples must be at least 2")
    days, step_s = float(days), float(step_s)
    duration = days * 86_400.0
    n = max(1, math.ceil(duration / step_s - 1e-9))
    if n > 10**9:
        raise QKDError(f"{n} steps are too many; use a longer step_s")
    if progress is not None:
        progress("link rates", 0.0)
    rate_list = tuple(link_rates(network) if rates is None else rates)
    ids = [r.id for r in rate_list]
    index = {link_id: i for i, link_id in enumerate(ids)}
    for event in events:
        if event.link not in index:
            raise QKDError(f"event names link {event.link!r}, which the network does not have")
    models = {link.id: link for link in network.links}
    fills = []
    cap = np.empty(len(rate_list))
    for i, r in enumerate(rate_list):
        model = models.get(r.id)
        period = model.days * 86_400.0 if isinstance(model, SatelliteLink) else None
        fills.append(_Fill(r, period))
        given = None if model is None else model.pool_bits
        cap[i] = r.key_rate_bps * DEFAULT_POOL_S if given is None else given

    # Epoch edges: every step in which some link goes down or comes back.
    down_spans: list[tuple[int, int, int]] = []
    for event in events:
        first = min(n, math.floor(event.start_s / step_s))
        last = min(n, math.ceil(event.end_s / step_s))
        if last > first:
            down_spans.append((index[event.link], first, last))
    edges = sorted({0, n, *(a for _, a, _ in down_spans), *(b for _, _, b in down_spans)})
    nodes = [node.name for node in network.nodes]
    relays = {node.name for node in network.nodes if node.kind != "endpoint"}
    demands = network.demands
    n_links, n_demands = len(rate_list), len(demands)
    q = np.array([d.rate_bps * step_s for d in demands])

    pool = np.zeros(n_links)
    filled = np.zeros(n_links)
    drawn = np.zeros(n_links)
    discarded = np.zeros(n_links)
    low = np.zeros(n_links)
    high = np.zeros(n_links)
    stride = max(1, math.ceil(n / samples))
    sample_steps: list[np.ndarray] = []
    sample_levels: list[np.ndarray] = []
    states = [_DemandState() for _ in demands]
    routes: list[list[Route]] = [[] for _ in demands]
    cache: dict[frozenset[int], _Routing] = {}
    chunk = max(64, _CHUNK_CELLS // max(1, n_links + n_demands))

    for a, b in itertools.pairwise(edges):
        down = frozenset(i for i, first, last in down_spans if first < b and last > a)
        if down not in cache:
            cache[down] = _routing(rate_list, down, nodes, relays, demands)
        routing = cache[down]
        for k, paths in enumerate(routing.paths):
            main = paths[0][0] if paths else ()
            route = Route(a * step_s, main, tuple(paths))
            if not routes[k] or routes[k][-1].paths != route.paths:
                routes[k].append(route)
        up = np.array([i not in down for i in range(n_links)])
        wanted = routing.share * q[routing.owner]

        for c0 in range(a, b, chunk):
            m = min(chunk, b - c0)
            t = (c0 + np.arange(m + 1, dtype=np.float64)) * step_s
            cum = np.zeros((n_links, m + 1))
            for i in map(int, np.flatnonzero(up)):
                values = fills[i](t)
                cum[i] = values - values[0]
            run = _share_steps(
                pool,
                cum,
                cap,
                m=routing.matrix,
                q=wanted,
                owner=routing.owner,
                n_demands=n_demands,
            )
            levels = run.levels
            pool = levels[:, -1].copy()
            filled += cum[:, m]
            drawn += run.drawn
            discarded += run.discarded
            # Rounding can leave a drained pool at -1e-5 of 1e10 bits: report it as empty.
            levels = np.maximum(levels, 0.0)
            if c0 == 0:
                low, high = levels.min(axis=1), levels.max(axis=1)
            else:
                low = np.minimum(low, levels.min(axis=1))
                high = np.maximum(high, levels.max(axis=1))
            picked = np.flatnonzero(
                ((c0 + np.arange(m) + 1) % stride == 0) | (c0 + np.arange(m) == n - 1)
            )
            sample_steps.append(c0 + picked + 1)
            sample_levels.append(levels[:, picked])
            for k in range(n_demands):
                state = states[k]
                state.delivered += float(run.got[k].sum())
                short = run.got[k] < q[k] * (1.0 - TOLERANCE)
                _add_runs(state, short, c0)
                used = routing.links_of[k]
                if used:
                    lowest = levels[used].min(axis=0)
                    state.pool_min = min(state.pool_min, float(lowest.min()))
                    state.pool_sum += float(lowest.sum())
                    state.pool_steps += m
            if progress is not None:
                progress("stepping", (c0 + m) / n)

    times = tuple(float(s) * step_s for s in np.concatenate(sample_steps))
    table = np.concatenate(sample_levels, axis=1)
    link_out = []
    for i, r in enumerate(rate_list):
        spans = sorted((e.start_s, e.end_s, e.kind) for e in events if e.link == r.id)
        link_out.append(
            LinkTimeline(
                id=r.id,
                kind=r.kind,
                key_rate_bps=r.key_rate_bps,
                filled_bits=float(filled[i]),
                drawn_bits=float(drawn[i]),
                final_bits=float(pool[i]),
                min_bits=float(low[i]),
                max_bits=float(high[i]),
                down=tuple(spans),
                times_s=times,
                levels_bits=tuple(float(v) for v in table[i]),
                capacity_bits=float(cap[i]),
                discarded_bits=float(discarded[i]),
            )
        )
    demand_out = []
    for k, d in enumerate(demands):
        state = states[k]
        runs = tuple((s0 * step_s, s1 * step_s) for s0, s1 in state.starved)
        demand_out.append(
            DemandTimeline(
                from_=d.from_,
                to=d.to,
                requested_bps=d.rate_bps,
                requested_bits=float(q[k] * n),
                delivered_bits=state.delivered,
                starved=runs,
                starved_s=float(sum(b - a for a, b in runs)),
                pool_min_bits=state.pool_min if state.pool_steps else None,
                pool_mean_bits=state.pool_sum / state.pool_steps if state.pool_steps else None,
                routes=tuple(routes[k]),
            )
        )
    return Simulation(
        name=network.network.name,
        days=days,
        step_s=step_s,
        steps=n,
        epochs=len(edges) - 1,
        demands=tuple(demand_out),
        links=tuple(link_out),
    )


def _add_runs(state: _DemandState, short: np.ndarray, offset: int) -> None:
    """Append the runs of True in ``short`` (steps ``offset + j``) as [first, end) pairs,
    merging with the last run when they touch."""
    if not short.any():
        return
    flags = np.concatenate([[False], short, [False]]).astype(np.int8)
    change = np.flatnonzero(np.diff(flags))
    runs = state.starved
    for first, end in zip(change[::2], change[1::2], strict=True):
        first_step, end_step = offset + int(first), offset + int(end)
        if runs and runs[-1][1] == first_step:
            runs[-1][1] = end_step
        else:
            runs.append([first_step, end_step])


def _routing(
    rates: Sequence[LinkRate],
    down: frozenset[int],
    nodes: Sequence[str],
    relays: set[str],
    demands: Sequence[Any],
) -> _Routing:
    """The routes of one epoch over the usable links (module docstring, "Routing")."""
    usable = [r for i, r in enumerate(rates) if i not in down and r.key_rate_bps > 0]
    caps = capacities(usable)
    between: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(rates):
        if i not in down and r.key_rate_bps > 0:
            between.setdefault((min(r.a, r.b), max(r.a, r.b)), []).append(i)
    split = route_demands(caps, nodes, relays, [(d.from_, d.to, d.rate_bps) for d in demands])
    owner: list[int] = []
    share: list[float] = []
    columns: list[np.ndarray] = []
    links_of: list[list[int]] = []
    for k, paths in enumerate(split):
        used: set[int] = set()
        for path, fraction in paths:
            column = np.zeros(len(rates))
            for u, v in itertools.pairwise(path):
                parallel = between[(min(u, v), max(u, v))]
                total = sum(rates[i].key_rate_bps for i in parallel)
                for i in parallel:
                    column[i] += rates[i].key_rate_bps / total
                    used.add(i)
            owner.append(k)
            share.append(fraction)
            columns.append(column)
        links_of.append(sorted(used))
    matrix = np.stack(columns, axis=1) if columns else np.zeros((len(rates), 0))
    return _Routing(split, np.array(owner, dtype=np.int64), np.array(share), matrix, links_of)

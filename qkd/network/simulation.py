"""Step a trusted-node QKD network in time: key pools per link, demands drawing through relay
paths, link failures and Eve.

Hazmat: figures for planning, not key material. Needs the ``network`` extra (networkx, scipy)
for the link rates and paths of :mod:`qkd.network.planner`.

Theory of operation
-------------------
Time runs in ``n = ceil(T / dt)`` steps of ``dt`` seconds; step ``k`` covers
``[k dt, (k+1) dt)``. Nothing here is random: the same inputs give the same figures.

- **Fills.** Every link has a key pool, empty at t = 0. A link with key rate ``R`` (the
  planner's :func:`~qkd.network.planner.link_rates`) adds ``R dt`` to its pool in each step
  in which it is up. A satellite link (a trusted satellite relaying between two ground
  stations, as Micius did) fills only inside the pass windows of ``LinkRate.windows``: each
  station's share of the key, ``R * P`` over the link's period ``P`` (its ``days``), is
  spread evenly over that station's pass seconds, and the relayed key available by time t is
  ``C(t) = min(C_a(t), C_b(t))`` (the satellite can XOR a key bit to the far station only
  once it shares a key bit with both). The passes repeat with the period ``P``. A step's fill
  is ``C((k+1) dt) - C(k dt)``, so a window edge inside a step gives a partial fill.
- **Events.** A link is down in every step that overlaps one of its events. ``failure``: the
  link is cut. ``eve``: an eavesdropper raises the link's QBER alarm, and the link delivers
  no key while she is there. A down link neither fills nor serves relays; its pool keeps the
  key it holds (stored key was distilled before the alarm and stays secret) for when it is
  back.
- **Routing.** Between consecutive event edges the set of usable links is fixed: a routing
  *epoch*. In each epoch every demand takes the planner's path over the usable links
  (widest, then fewest hops: :func:`~qkd.network.planner.bottleneck_path`, with endpoints
  relaying for no one), so a demand whose path loses a link is re-routed when another path
  exists. Paths are computed once per distinct set of usable links.
- **Draws.** Relaying ``x`` bits over a path one-time-pads them hop by hop, consuming ``x``
  bits on every hop (ITU-T Y.3803; DESIGN.md "QKD networks"). Parallel links of a hop share
  a demand's hop in proportion to their key rates (``w_dl = R_l / sum R``).
- **Sharing, fair and deterministic.** Each link's key is divided between the demands routed
  over it in proportion to their requests on it: demand d gets the share
  ``s_dl = w_dl q_d / sum_e w_el q_e`` of the link's fills, and at the start of each epoch
  the key then in the pool is re-divided the same way (a link no demand uses keeps its key
  undivided). When a link can serve every demand, every demand gets its request from it;
  when it cannot, each demand gets from it in proportion to its request, as a weighted fair
  queue would. A share that a demand cannot use (it is held back on another hop) stays in
  the pool, reserved for that demand, until it can; it is not lent to others in the meantime.
  Let ``q_d = r_d dt`` be a demand's request per step and ``F_dl(k)`` the fills of its share
  of link l over the first k steps of an epoch, ``B_dl`` its share of the pool at the start.
  Greedily, the demand's delivered key ``X_d(k)`` after k steps is

      X_d(k) = min(X_d(k-1) + q_d,  G_d(k)),   G_d(k) = min_l (B_dl + F_dl(k)) / w_dl,

  the most that every hop can pay for, never more than requested. Unrolled, with
  ``H(0) = 0`` and ``H(j) = G(j)`` for j >= 1 (G never falls, so neither does X)::

      X_d(k) = k q_d + min_{0 <= j <= k} (H(j) - j q_d),

  a cumulative minimum (a Lindley recursion, Lindley 1952). That, and cumulative sums of
  fills, is how each epoch is computed: whole numpy arrays over its steps (in chunks of
  bounded memory, exact because the state carried between chunks is the shares' levels),
  with Python loops only over epochs, chunks, demands and the hops of their paths.
- **Pools.** Link l's level after step k is its level at the epoch start, plus its fills,
  minus ``sum_d w_dl X_d(k)``. Conservation, ``level = filled - drawn``, holds on every link
  at every step; no key is lost or made.
- **Reports.** Per demand: the key delivered, the intervals in which a step delivered less
  than ``q_d (1 - 1e-9)`` (starved; also every step with no path), and the lowest pool on its
  path at each step, its minimum and time mean over the steps it had a path. Per link: the
  key filled and drawn, the final, lowest and highest levels, when it was down, and its level
  at most ``samples`` evenly spaced step ends (for plots).
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
from qkd.network.planner import TOLERANCE, LinkRate, bottleneck_path, capacities, link_rates

__all__ = [
    "DemandTimeline",
    "LinkTimeline",
    "Route",
    "Simulation",
    "simulate_network",
]

# Step-levels held in memory at once (links x steps of a chunk): 2 MB of float64 per array
# keeps a chunk in cache, which measured 3-4x faster than 32 MB on the backbone example.
_CHUNK_CELLS = 250_000


@dataclass(frozen=True)
class Route:
    """The path a demand takes from ``from_s`` on (``()``: no path, the demand is cut off)."""

    from_s: float
    path: tuple[str, ...]


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
                    "routes": [{"from_s": r.from_s, "path": list(r.path)} for r in d.routes],
                }
                for d in self.demands
            ],
            "links": [
                {
                    "id": lk.id,
                    "kind": lk.kind,
                    "key_rate_bps": lk.key_rate_bps,
                    "filled_bits": lk.filled_bits,
                    "drawn_bits": lk.drawn_bits,
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
    """``C(t)``: the key a link has delivered by time t when always up (module docstring)."""

    def __init__(self, rate: LinkRate, period_s: float | None) -> None:
        self.rate = rate.key_rate_bps
        self.period = period_s
        self.stations: list[tuple[np.ndarray, np.ndarray, np.ndarray, float]] = []
        if period_s is None:
            return
        for station in (rate.a, rate.b):
            spans = sorted((s, e) for name, s, e in rate.windows if name == station and e > s)
            starts = np.array([s for s, _ in spans], dtype=np.float64)
            ends = np.array([e for _, e in spans], dtype=np.float64)
            before = np.concatenate([[0.0], np.cumsum(ends - starts)])
            self.stations.append((starts, ends, before, float(before[-1])))

    def __call__(self, t: np.ndarray) -> np.ndarray:
        if self.period is None:
            return self.rate * t
        if self.rate <= 0 or any(total <= 0 for *_, total in self.stations):
            return np.zeros_like(t)
        out = np.full_like(t, np.inf)
        turns, within = np.divmod(t, self.period)
        for starts, ends, before, total in self.stations:
            i = np.searchsorted(starts, within, side="right") - 1
            inside = np.clip(within - starts[np.maximum(i, 0)], 0.0, None)
            span = ends[np.maximum(i, 0)] - starts[np.maximum(i, 0)]
            covered = np.where(i >= 0, before[np.maximum(i, 0)] + np.minimum(inside, span), 0.0)
            seconds = turns * total + covered
            out = np.minimum(out, seconds * (self.rate * self.period / total))
        return out


# ----------------------------------------------------------------------------- the run


@dataclass
class _DemandState:
    delivered: float = 0.0
    starved: list[list[int]] = field(default_factory=list)
    pool_min: float = math.inf
    pool_sum: float = 0.0
    pool_steps: int = 0


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
    for r in rate_list:
        model = models.get(r.id)
        period = model.days * 86_400.0 if isinstance(model, SatelliteLink) else None
        fills.append(_Fill(r, period))

    # Epoch edges: every step in which some link goes down or comes back.
    down_spans: list[tuple[int, int, int]] = []
    for event in events:
        first = min(n, math.floor(event.start_s / step_s))
        last = min(n, math.ceil(event.end_s / step_s))
        if last > first:
            down_spans.append((index[event.link], first, last))
    edges = sorted({0, n, *(a for _, a, _ in down_spans), *(b for _, _, b in down_spans)})
    relays = {node.name for node in network.nodes if node.kind != "endpoint"}
    demands = network.demands
    n_links, n_demands = len(rate_list), len(demands)
    q = np.array([d.rate_bps * step_s for d in demands])

    pool = np.zeros(n_links)
    filled = np.zeros(n_links)
    drawn = np.zeros(n_links)
    low = np.zeros(n_links)
    high = np.zeros(n_links)
    stride = max(1, math.ceil(n / samples))
    sample_steps: list[np.ndarray] = []
    sample_levels: list[np.ndarray] = []
    states = [_DemandState() for _ in demands]
    routes: list[list[Route]] = [[] for _ in demands]
    cache: dict[frozenset[int], list[tuple[tuple[str, ...], list[tuple[int, float]]]]] = {}
    chunk = max(64, _CHUNK_CELLS // max(1, n_links + n_demands))

    for a, b in itertools.pairwise(edges):
        down = frozenset(i for i, first, last in down_spans if first < b and last > a)
        if down not in cache:
            cache[down] = _paths(rate_list, down, relays, demands)
        hops = [hop for _, hop in cache[down]]
        for k, (path, _) in enumerate(cache[down]):
            if not routes[k] or routes[k][-1].path != path:
                routes[k].append(Route(a * step_s, path))
        # Re-divide every pool among the demands now routed over it (module docstring).
        asked = np.zeros(n_links)
        for k, hop in enumerate(hops):
            for i, w in hop:
                asked[i] += w * q[k]
        share = {(k, i): w * q[k] / asked[i] for k, hop in enumerate(hops) for i, w in hop}
        weight = {(k, i): w for k, hop in enumerate(hops) for i, w in hop}
        reserved = {key: pool[key[1]] * s for key, s in share.items()}
        up = np.array([i not in down for i in range(n_links)])

        for c0 in range(a, b, chunk):
            m = min(chunk, b - c0)
            t = (c0 + np.arange(m + 1, dtype=np.float64)) * step_s
            cum = np.zeros((n_links, m + 1))
            for i in map(int, np.flatnonzero(up)):
                values = fills[i](t)
                cum[i] = values - values[0]
            steps = np.arange(m + 1)
            taken = np.zeros((n_links, m + 1))
            delivered = np.zeros((n_demands, m + 1))
            for k, hop in enumerate(hops):
                if not hop:
                    continue
                g = np.full(m + 1, np.inf)
                for i, w in hop:
                    np.minimum(g, (reserved[(k, i)] + share[(k, i)] * cum[i]) / w, out=g)
                g[0] = 0.0
                x = q[k] * steps + np.minimum.accumulate(g - q[k] * steps)
                delivered[k] = x
                for i, w in hop:
                    taken[i] += w * x
            levels = pool[:, None] + cum[:, 1:] - taken[:, 1:]
            for (k, i), s in share.items():
                reserved[(k, i)] += s * cum[i, m] - weight[(k, i)] * delivered[k, m]
            pool = levels[:, -1].copy()
            # Rounding can leave a drained pool at -1e-5 of 1e10 bits: report it as empty.
            levels = np.maximum(levels, 0.0)
            filled += cum[:, m]
            drawn += taken[:, m]
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
            per_step = np.diff(delivered, axis=1)
            for k, hop in enumerate(hops):
                state = states[k]
                state.delivered += float(delivered[k, m])
                short = per_step[k] < q[k] * (1.0 - TOLERANCE)
                _add_runs(state, short, c0)
                if hop:
                    lowest = levels[[i for i, _ in hop]].min(axis=0)
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


def _paths(
    rates: Sequence[LinkRate], down: frozenset[int], relays: set[str], demands: Sequence[Any]
) -> list[tuple[tuple[str, ...], list[tuple[int, float]]]]:
    """For each demand, its node path over the usable links, and the links of that path with
    the weight of each (parallel links of a hop in proportion to their rates)."""
    usable = [r for i, r in enumerate(rates) if i not in down and r.key_rate_bps > 0]
    caps = capacities(usable)
    between: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(rates):
        if i not in down and r.key_rate_bps > 0:
            between.setdefault((min(r.a, r.b), max(r.a, r.b)), []).append(i)
    out = []
    for d in demands:
        path = bottleneck_path(caps, relays | {d.from_, d.to}, d.from_, d.to)
        hop: list[tuple[int, float]] = []
        for u, v in itertools.pairwise(path):
            parallel = between[(min(u, v), max(u, v))]
            total = sum(rates[i].key_rate_bps for i in parallel)
            hop += [(i, rates[i].key_rate_bps / total) for i in parallel]
        out.append((tuple(path), hop))
    return out

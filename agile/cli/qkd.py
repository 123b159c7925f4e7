"""``agile qkd``: simulate a QKD link end to end, and plot analytic key rates against distance."""

from __future__ import annotations

import argparse
import math
import sys
import threading
import time
from types import TracebackType
from typing import Any

from agile.cli._output import EXIT_OK, EXIT_REJECTED, EXIT_USAGE, emit_json, fail

# Progress appears only once a run has taken this long (seconds).
_PROGRESS_AFTER = 2.0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("qkd", help="simulate QKD links and compute key rates")
    commands = parser.add_subparsers(dest="qkd_command", metavar="SUBCOMMAND", required=True)

    from qkd.physics.link import PRESETS
    from qkd.physics.protocols import PROTOCOLS
    from qkd.postprocessing.cascade import VARIANTS

    sim = commands.add_parser(
        "simulate",
        help="run a link and its post-processing; exit 0 with a key, 1 on an abort",
    )
    sim.add_argument("--protocol", choices=PROTOCOLS, default="bb84-decoy")
    sim.add_argument("--preset", choices=sorted(PRESETS), default="gys")
    sim.add_argument("--distance-km", type=_distance, default=25.0, metavar="X")
    sim.add_argument("--pulses", type=_count, default=10**8, metavar="N", help="e.g. 1e8")
    sim.add_argument(
        "--eve",
        default="none",
        metavar="ATTACK",
        help="none | intercept-resend:P | beam-splitting:P | pns",
    )
    sim.add_argument("--mu", type=float, default=None, help="signal (or pair) mean photon number")
    sim.add_argument("--nu", type=float, default=None, help="weak decoy mean photon number")
    sim.add_argument("--seed", type=int, default=None, help="reproducible and INSECURE keys")
    sim.add_argument("--asymptotic", action="store_true", help="GLLP length, no finite-key terms")
    sim.add_argument("--sampler", choices=("events", "pulses"), default="events")
    sim.add_argument("--cascade", choices=VARIANTS, default="improved")
    sim.add_argument("--json", action="store_true", help="print machine-readable JSON")
    sim.set_defaults(handler=run_simulate)

    rate = commands.add_parser("rate", help="analytic key rate against distance, with PLOB")
    rate.add_argument("--preset", choices=sorted(PRESETS), required=True)
    rate.add_argument(
        "--distance-km", type=_range, required=True, metavar="A:B:STEP", help="e.g. 0:150:10"
    )
    rate.add_argument("--nu", type=float, default=0.1, help="weak decoy for vacuum+weak")
    rate.add_argument("--json", action="store_true", help="print machine-readable JSON")
    rate.add_argument("--plot", metavar="FILE.png", default=None, help="write a log-scale plot")
    rate.add_argument(
        "--repeater-segments",
        type=_segments,
        default=None,
        metavar="N",
        help="add a repeater chain of N segments (Barrett-Kok links, BBM92): bits per slot",
    )
    rate.add_argument("--memory-efficiency", type=_probability, default=0.9, metavar="E")
    rate.add_argument("--repeater-detector-efficiency", type=_probability, default=0.9, metavar="E")
    rate.add_argument("--repeater-swap-success", type=_probability, default=0.9, metavar="Q")
    rate.add_argument("--repeater-fidelity", type=_werner, default=0.99, metavar="F0")
    rate.add_argument(
        "--twin-field-coefficient",
        type=_probability,
        default=None,
        metavar="C",
        help="add twin-field QKD at C * sqrt(eta) bits per pulse",
    )
    rate.set_defaults(handler=run_rate)

    rep = commands.add_parser(
        "repeater",
        help="a repeater chain: slots per end-to-end pair, fidelity and BBM92 key fraction",
    )
    rep.add_argument("--segments", type=_segments, required=True, metavar="N")
    rep.add_argument("--link-success", type=_probability, required=True, metavar="P")
    rep.add_argument("--swap-success", type=_probability, default=1.0, metavar="Q")
    rep.add_argument("--fidelity", type=_werner, default=1.0, metavar="F0")
    rep.add_argument("--t2-s", type=_seconds, default=None, metavar="T2", help="memory T2")
    rep.add_argument("--slot-s", type=_seconds, default=None, metavar="TAU", help="slot length")
    rep.add_argument(
        "--cutoff-s",
        type=_cutoff,
        default=None,
        metavar="C",
        help="memory cutoff: a pair stored longer than C is discarded and its link retries",
    )
    rep.add_argument("--chains", type=_chains, default=10_000, metavar="M")
    rep.add_argument("--seed", type=int, default=None, help="reproducible run")
    rep.add_argument("--json", action="store_true", help="print machine-readable JSON")
    rep.set_defaults(handler=run_repeater)

    sat = commands.add_parser(
        "passes",
        help="satellite passes over a ground station: durations, loss and key per pass",
    )
    orbit = sat.add_mutually_exclusive_group()
    orbit.add_argument(
        "--tle", nargs=2, metavar=("LINE1", "LINE2"), help="a two-line element set (SGP4)"
    )
    orbit.add_argument(
        "--circular",
        nargs=2,
        type=float,
        metavar=("ALT_KM", "INC_DEG"),
        help="a circular orbit with the J2 drift, node 0 at 2017-01-01 UTC",
    )
    orbit.add_argument(
        "--circular-from-tle",
        action="store_true",
        help="the circular orbit (with J2) of Micius's TLE (or --tle's), to compare with SGP4",
    )
    sat.add_argument("--latitude", type=float, default=40.396, help="degrees (Xinglong)")
    sat.add_argument("--longitude", type=float, default=117.577, help="degrees (Xinglong)")
    sat.add_argument("--days", type=_seconds, default=1.0, metavar="D")
    sat.add_argument("--min-elevation", type=float, default=15.0, metavar="DEG")
    sat.add_argument(
        "--night",
        type=float,
        default=None,
        metavar="SUN_DEG",
        help="only steps with the Sun below SUN_DEG (e.g. -12)",
    )
    sat.add_argument("--step-s", type=_seconds, default=1.0, metavar="S")
    sat.add_argument(
        "--max-range-km",
        type=_seconds,
        default=None,
        metavar="KM",
        help="keep only the part of each pass within this slant range (Micius: 1200)",
    )
    sat.add_argument(
        "--epsilon-sec",
        type=_probability,
        default=1e-10,
        metavar="EPS",
        help="finite-key security parameter (Micius: 1e-9)",
    )
    sat.add_argument("--json", action="store_true", help="print machine-readable JSON")
    sat.set_defaults(handler=run_passes)


def _count(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; write e.g. 1e8") from None
    if not math.isfinite(value) or value < 1 or value != math.floor(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return int(value)


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _probability(text: str) -> float:
    value = _number(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a probability in (0, 1]")
    return value


def _werner(text: str) -> float:
    value = _number(text)
    if not 0.25 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r}: a Werner fidelity lies in [0.25, 1]")
    return value


def _seconds(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a time > 0 s")
    return value


def _cutoff(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a cutoff >= 0 s")
    return value


def _segments(text: str) -> int:
    value = _count(text)
    if value > 1024:
        raise argparse.ArgumentTypeError(f"{text!r}: at most 1024 segments")
    return value


def _chains(text: str) -> int:
    value = _count(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: at least 2 chains give a standard error")
    return value


def _distance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a distance in km") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a distance >= 0 km")
    return value


def _range(text: str) -> list[float]:
    parts = text.split(":")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"{text!r} is not A:B:STEP (e.g. 0:150:10)")
    start, stop, step = (_distance(p) for p in parts)
    if step <= 0 or stop < start:
        raise argparse.ArgumentTypeError(f"{text!r}: need A <= B and STEP > 0")
    count = math.floor((stop - start) / step + 1e-9) + 1
    if count > 100_000:
        raise argparse.ArgumentTypeError(f"{text!r} gives {count} points; use a larger STEP")
    return [start + i * step for i in range(count)]


class _ProgressBar:
    """A stage bar on stderr, drawn only on a terminal and only after a few seconds."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.start = time.monotonic()
        self.stage = "starting"
        self.fraction = 0.0
        self.drawn = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> _ProgressBar:
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self.enabled:
            self._thread.join()
            if self.drawn:
                sys.stderr.write("\r" + " " * 70 + "\r")
                sys.stderr.flush()

    def update(self, stage: str, fraction: float) -> None:
        self.stage, self.fraction = stage, fraction

    def _loop(self) -> None:
        while not self._stop.wait(0.25):
            elapsed = time.monotonic() - self.start
            if elapsed < _PROGRESS_AFTER:
                continue
            filled = int(30 * self.fraction)
            bar = "#" * filled + "-" * (30 - filled)
            sys.stderr.write(f"\r[{bar}] {self.stage:<15} {elapsed:6.1f} s")
            sys.stderr.flush()
            self.drawn = True


def run_simulate(args: argparse.Namespace) -> int:
    from qkd import QKDError, simulate
    from qkd.physics.eve import parse_eve

    try:
        eve = parse_eve(args.eve)
    except QKDError as exc:
        fail(f"--eve: {exc}", EXIT_USAGE)
    with _ProgressBar(enabled=not args.json) as bar:
        try:
            result = simulate(
                protocol=args.protocol,
                preset=args.preset,
                distance_km=args.distance_km,
                pulses=args.pulses,
                eve=eve,
                mu=args.mu,
                nu=args.nu,
                asymptotic=args.asymptotic,
                seed=args.seed,
                sampler=args.sampler,
                cascade=args.cascade,
                progress=bar.update,
            )
        except QKDError as exc:
            # simulate() raises only on parameters it cannot run with: a usage error.
            fail(f"qkd simulate: {exc}", EXIT_USAGE)
    report = result.report
    if args.json:
        emit_json(report.to_dict())
    else:
        print(report.render())
    return EXIT_REJECTED if report.aborted else EXIT_OK


def run_rate(args: argparse.Namespace) -> int:
    from qkd import rates

    rows = []
    for d in args.distance_km:
        eta = rates.transmittance(args.preset, d)
        mu_inf, r_inf = rates.optimal_mu(args.preset, d, method="infinite")
        mu_vw, r_vw = rates.optimal_mu(args.preset, d, method="vacuum+weak", nu=args.nu)
        rows.append(
            {
                "distance_km": d,
                "eta": eta,
                "mu_infinite": mu_inf,
                "rate_infinite": r_inf,
                "mu_vacuum_weak": mu_vw,
                "rate_vacuum_weak": r_vw,
                "plob": float(rates.plob(eta)),
            }
        )
        if args.twin_field_coefficient is not None:
            rows[-1]["twin_field"] = args.twin_field_coefficient * math.sqrt(eta)
        if args.repeater_segments is not None:
            rows[-1]["repeater"] = _repeater_key(args, d)
    limits = {
        "infinite": rates.max_distance(args.preset, method="infinite"),
        "vacuum+weak": rates.max_distance(args.preset, method="vacuum+weak", nu=args.nu),
    }
    if args.plot:
        _plot(args.plot, args.preset, args.nu, rows, limits)
    if args.json:
        emit_json(
            {
                "preset": args.preset,
                "nu": args.nu,
                "rate_unit": "secret bits per pulse",
                "max_distance_km": limits,
                "rows": rows,
            }
        )
        return EXIT_OK
    print(f"preset {args.preset}: bits per pulse at the optimal mu (vacuum+weak nu={args.nu})")
    print(f"{'km':>7} {'eta':>10} {'mu':>6} {'infinite':>11} {'vac+weak':>11} {'PLOB':>11}")
    for r in rows:
        print(
            f"{r['distance_km']:7.1f} {r['eta']:10.3e} {r['mu_infinite']:6.3f} "
            f"{r['rate_infinite']:11.3e} {r['rate_vacuum_weak']:11.3e} {r['plob']:11.3e}"
        )
    print(
        f"maximum distance: {limits['infinite']:.1f} km (infinite decoys), "
        f"{limits['vacuum+weak']:.1f} km (vacuum+weak)"
    )
    return EXIT_OK


def run_repeater(args: argparse.Namespace) -> int:
    from qkd.physics.repeater import (
        ChainParameters,
        RepeaterConfigError,
        bbm92_key_fraction,
        simulate_chains,
    )

    if args.t2_s is not None and args.slot_s is None:
        fail("qkd repeater: --t2-s needs --slot-s, the length of one attempt slot", EXIT_USAGE)
    if args.cutoff_s is not None and args.slot_s is None:
        fail("qkd repeater: --cutoff-s needs --slot-s, the length of one attempt slot", EXIT_USAGE)
    try:
        chain = ChainParameters(
            segments=args.segments,
            link_success=args.link_success,
            swap_success=args.swap_success,
            fidelity=args.fidelity,
            t2_s=args.t2_s,
            slot_s=args.slot_s,
            cutoff_s=args.cutoff_s,
        )
        result = simulate_chains(chain, chains=args.chains, rng=args.seed)
    except RepeaterConfigError as exc:
        fail(f"qkd repeater: {exc}", EXIT_USAGE)
    # With a cutoff the analytic side is an exact recursion, which a long chain with a long
    # cutoff can outgrow: then it is null and the Monte Carlo stands alone.
    analytic: str | None = None
    mean_slots: float | None
    fidelity_analytic: float | None
    try:
        mean_slots, fidelity_analytic = chain.mean_slots, chain.mean_fidelity
    except RepeaterConfigError as exc:
        mean_slots = fidelity_analytic = None
        analytic = str(exc)
    document: dict[str, Any] = {
        "segments": chain.segments,
        "mean_slots": mean_slots,
        "mc_mean_slots": result.mean_slots,
        "mc_stderr": result.stderr_slots,
        "fidelity": result.mean_fidelity,
        "secret_key_fraction": bbm92_key_fraction(result.mean_fidelity),
        "fidelity_analytic": fidelity_analytic,
        "fidelity_stderr": result.stderr_fidelity,
        "chains": result.chains,
    }
    if chain.cutoff_slots is not None:
        document["cutoff_slots"] = chain.cutoff_slots
    if analytic is not None:
        document["analytic_unavailable"] = analytic
    if chain.slot_s is not None:
        document["pairs_per_s"] = 1.0 / ((mean_slots or result.mean_slots) * chain.slot_s)
    if args.json:
        emit_json(document)
        return EXIT_OK
    print(
        f"{chain.segments} segments, P={chain.link_success:g}, Q={chain.swap_success:g}, "
        f"F0={chain.fidelity:g}"
    )
    if chain.cutoff_slots is not None:
        print(f"memory cutoff: {chain.cutoff_slots} slots")
    if mean_slots is None or fidelity_analytic is None:
        print(f"slots per end-to-end pair: no exact form here ({analytic})")
    else:
        form = "closed form" if chain.cutoff_slots is None else "exact recursion"
        print(f"slots per end-to-end pair: {mean_slots:.6g} ({form})")
    print(
        f"                           {result.mean_slots:.6g} +- {result.stderr_slots:.2g} "
        f"(Monte Carlo, {result.chains} pairs)"
    )
    print(
        f"fidelity: {result.mean_fidelity:.6f} +- {result.stderr_fidelity:.1g}"
        + ("" if fidelity_analytic is None else f" (analytic {fidelity_analytic:.6f})")
    )
    print(f"BBM92 secret-key fraction: {document['secret_key_fraction']:.4f}")
    if "pairs_per_s" in document:
        print(f"end-to-end pairs per second: {document['pairs_per_s']:.6g}")
    return EXIT_OK


def run_passes(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from qkd.physics import satellite
    from qkd.physics.link import LinkConfigError

    try:
        if args.circular is not None:
            orbit: satellite.Orbit = satellite.CircularOrbit(
                altitude_km=args.circular[0], inclination_deg=args.circular[1]
            )
            label = f"circular {args.circular[0]:g} km, {args.circular[1]:g} deg, J2"
        else:
            lines = tuple(args.tle) if args.tle else satellite.MICIUS_TLE
            if args.circular_from_tle:
                orbit = satellite.CircularOrbit.from_tle(lines[0], lines[1])
                label = "circular orbit of the TLE, J2"
            else:
                orbit = satellite.TleOrbit(lines[0], lines[1])
                label = "TLE, SGP4"
        station = satellite.GroundStation(
            name="station", latitude_deg=args.latitude, longitude_deg=args.longitude
        )
        found = satellite.find_passes(
            orbit,
            station,
            duration_s=args.days * 86_400.0,
            step_s=args.step_s,
            min_elevation_deg=args.min_elevation,
            max_sun_elevation_deg=args.night,
        )
        if args.max_range_km is not None:
            trimmed = (one.within(args.max_range_km) for one in found)
            found = [one for one in trimmed if one is not None]
        keys = [satellite.key_per_pass(one, epsilon_sec=args.epsilon_sec) for one in found]
    except LinkConfigError as exc:
        fail(f"qkd passes: {exc}", EXIT_USAGE)
    epoch = orbit.epoch.timestamp()
    rows: list[dict[str, Any]] = [
        {
            "start_utc": datetime.fromtimestamp(epoch + one.start_s, UTC).isoformat(
                timespec="seconds"
            ),
            "duration_s": one.duration_s,
            "max_elevation_deg": one.max_elevation_deg,
            "min_range_km": one.min_range_km,
            "max_range_km": one.max_range_km,
            "min_loss_db": one.min_loss_db,
            "max_loss_db": one.max_loss_db,
            "detections": key.detections,
            "sifted_bits": key.sifted_bits,
            "qber": key.qber,
            "secret_bits": key.secret_bits,
            "asymptotic_bits": key.asymptotic_bits,
        }
        for one, key in zip(found, keys, strict=True)
    ]
    summary = {
        "orbit": label,
        "days": args.days,
        "passes": len(rows),
        "passes_per_day": len(rows) / args.days,
        "mean_duration_s": sum(p.duration_s for p in found) / len(found) if found else 0.0,
        "loss_db_range": [min(p.min_loss_db for p in found), max(p.max_loss_db for p in found)]
        if found
        else None,
        "mean_secret_bits_per_pass": sum(k.secret_bits for k in keys) / len(keys) if keys else 0.0,
        "secret_bits_per_day": sum(k.secret_bits for k in keys) / args.days,
    }
    if args.json:
        emit_json({**summary, "pass_list": rows})
        return EXIT_OK
    print(f"{label}: {len(rows)} passes in {args.days:g} days")
    for r in rows:
        print(
            f"  {r['start_utc']}  {r['duration_s']:5.0f} s  max {r['max_elevation_deg']:4.1f} deg  "
            f"{r['min_range_km']:5.0f}-{r['max_range_km']:5.0f} km  "
            f"{r['min_loss_db']:4.1f}-{r['max_loss_db']:4.1f} dB  "
            f"{r['secret_bits']:>9,} secret bits (asymptotic {r['asymptotic_bits']:,})"
        )
    if rows:
        print(
            f"per day {summary['passes_per_day']:.2f} passes, "
            f"mean {summary['mean_duration_s']:.0f} s, "
            f"{summary['mean_secret_bits_per_pass']:,.0f} secret bits per pass"
        )
    return EXIT_OK


def _repeater_key(args: argparse.Namespace, distance_km: float) -> float:
    """Secret bits per slot of the repeater chain asked for, spanning ``distance_km``."""
    from qkd.physics.link import PRESETS
    from qkd.physics.repeater import ChainParameters, elementary_link_success, key_per_slot

    n = args.repeater_segments
    p = elementary_link_success(
        distance_km / n,
        attenuation_db_per_km=PRESETS[args.preset].alpha_db_per_km,
        memory_efficiency=args.memory_efficiency,
        detector_efficiency=args.repeater_detector_efficiency,
    )
    chain = ChainParameters(
        segments=n,
        link_success=p,
        swap_success=args.repeater_swap_success,
        fidelity=args.repeater_fidelity,
    )
    return key_per_slot(chain)


def _plot(
    path: str, preset: str, nu: float, rows: list[dict[str, float]], limits: dict[str, float]
) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        fail("--plot needs matplotlib: pip install 'qkd-agile[plot]'")
    import numpy as np

    from qkd import rates

    d = np.array([r["distance_km"] for r in rows])
    fine = np.linspace(d.min(), d.max(), 400) if d.size > 1 else d
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    ax.semilogy(
        fine,
        rates.plob([rates.transmittance(preset, x) for x in fine]),
        "k--",
        label="PLOB bound $-\\log_2(1-\\eta)$",
    )
    for key, label, km, color in (
        ("rate_infinite", "decoy BB84, infinite decoys (GLLP)", limits["infinite"], "C0"),
        (
            "rate_vacuum_weak",
            f"decoy BB84, vacuum + weak ($\\nu$={nu:g})",
            limits["vacuum+weak"],
            "C1",
        ),
    ):
        y = np.array([r[key] for r in rows])
        mask = y > 0
        ax.semilogy(
            d[mask],
            y[mask],
            "-",
            color=color,
            marker="o",
            markersize=3,
            label=f"{label}; max {km:.1f} km",
        )
        if d.min() <= km <= d.max():
            ax.axvline(km, color=color, linestyle=":", linewidth=1)
    for key, label, color in (
        ("twin_field", "twin-field, $C\\sqrt{\\eta}$", "C2"),
        ("repeater", "repeater chain, bits per slot (memories without dephasing)", "C3"),
    ):
        if key in rows[0]:
            y = np.array([r[key] for r in rows])
            mask = y > 0
            ax.semilogy(d[mask], y[mask], "-", color=color, marker="s", markersize=3, label=label)
    ax.set_xlabel("fibre length (km)")
    ax.set_ylabel("secret key rate (bits per pulse)")
    ax.set_title(f"Key rate against distance, preset '{preset}'")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    try:
        fig.savefig(path)
    except OSError as exc:
        fail(f"--plot {path}: cannot write the file ({exc.strerror}); choose a writable path")
    finally:
        plt.close(fig)

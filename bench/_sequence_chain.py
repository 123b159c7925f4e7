"""The repeater chain of DESIGN.md simulated event by event on SeQUeNCe's kernel.

Run by ``bench/network.py`` with the Python of the SeQUeNCe venv (``make bench-sequence``
creates ``.venv-sequence``); it imports nothing from this project. Prints one JSON object.

What runs: SeQUeNCe's discrete-event ``Timeline`` with one ``Event``/``Process`` per link
attempt per slot, each elementary link a SeQUeNCe ``Entity`` drawing from the numpy generator
of the ``Node`` at its left end, and one end-of-slot event that runs the N - 1 swaps (each
succeeding with Q) once all N links hold a pair, and discards every pair on any failure. This is
exactly the slot protocol of DESIGN.md ("agile qkd repeater"). SeQUeNCe's own stack (Barrett-Kok
generation with photons and detectors, RSVP reservations, rule-driven swapping) runs a
different protocol (no common slot, no global restart, and in 0.8.5 its rules cannot set the
swap success probability: ``action_condition_set.py`` leaves it as a TODO), and it costs more
events per attempt, so the time measured here is a lower bound on what that stack would need.

The run stops when the standard error of the mean slots per delivered pair falls to the target
fraction of the mean, or when the wall-clock cap is reached; then the time to reach the target
is extrapolated with the standard error falling as 1/sqrt(pairs).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from importlib.metadata import version

from sequence.kernel.entity import Entity
from sequence.kernel.event import Event
from sequence.kernel.process import Process
from sequence.kernel.timeline import Timeline
from sequence.topology.node import Node

SLOT_PS = 1_000_000  # one slot is 1 us of simulated time; only the slot count matters


class ElementaryLink(Entity):
    """One elementary link: attempts once per slot while it holds no pair."""

    def __init__(self, name: str, timeline: Timeline, node: Node, success: float) -> None:
        super().__init__(name, timeline)
        self.node = node
        self.success = success
        self.holding = False

    def init(self) -> None:
        pass

    def attempt(self) -> None:
        if self.node.get_generator().random() < self.success:
            self.holding = True


class Chain(Entity):
    """Schedules the attempts of each slot and swaps at its end; counts delivered pairs."""

    def __init__(
        self, timeline: Timeline, node: Node, links: list[ElementaryLink], swap: float
    ) -> None:
        super().__init__("chain", timeline)
        self.node = node
        self.links = links
        self.swap = swap
        self.slot = 0
        self.started = 0
        self.samples: list[int] = []

    def init(self) -> None:
        self.schedule_slot()

    def schedule_slot(self) -> None:
        self.slot += 1
        t = self.slot * SLOT_PS
        for link in self.links:
            if not link.holding:
                self.timeline.schedule(Event(t, Process(link, "attempt", []), priority=0))
        self.timeline.schedule(Event(t, Process(self, "end_slot", []), priority=1))

    def end_slot(self) -> None:
        if all(link.holding for link in self.links):
            generator = self.node.get_generator()
            swapped = all(generator.random() < self.swap for _ in self.links[1:])
            for link in self.links:
                link.holding = False
            if swapped:
                self.samples.append(self.slot - self.started)
                self.started = self.slot
        self.schedule_slot()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--segments", type=int, required=True)
    parser.add_argument("--link-success", type=float, required=True)
    parser.add_argument("--swap-success", type=float, default=1.0)
    parser.add_argument("--target", type=float, default=0.01, help="stderr / mean to reach")
    parser.add_argument("--cap-s", type=float, default=180.0, help="wall-clock cap")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    start = time.perf_counter()
    timeline = Timeline()
    nodes = [Node(f"station{i}", timeline, seed=args.seed + i) for i in range(args.segments + 1)]
    links = [
        ElementaryLink(f"link{i}", timeline, nodes[i], args.link_success)
        for i in range(args.segments)
    ]
    chain = Chain(timeline, nodes[-1], links, args.swap_success)
    timeline.init()
    # Run in chunks of simulated time and check the precision between them.
    chunk_slots = 5_000
    mean = stderr = math.nan
    while True:
        timeline.stop_time = (chain.slot + chunk_slots) * SLOT_PS
        timeline.run()
        n = len(chain.samples)
        elapsed = time.perf_counter() - start
        if n >= 30:
            mean = sum(chain.samples) / n
            var = sum((x - mean) ** 2 for x in chain.samples) / (n - 1)
            stderr = math.sqrt(var / n)
            if stderr <= args.target * mean or elapsed >= args.cap_s:
                break
    reached = stderr <= args.target * mean
    # stderr ~ 1/sqrt(n) and time ~ n: the time to the target scales as (stderr/target)^2.
    needed = elapsed if reached else elapsed * (stderr / (args.target * mean)) ** 2
    json.dump(
        {
            "sequence_version": version("sequence"),
            "pairs": n,
            "slots": chain.slot,
            "events": timeline.run_counter,
            "mean_slots": mean,
            "stderr_slots": stderr,
            "seconds": elapsed,
            "reached_target": reached,
            "seconds_to_target": needed,
        },
        sys.stdout,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

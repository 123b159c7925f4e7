"""The repeater chain of DESIGN.md simulated event by event on SeQUeNCe's kernel.

Run by ``bench/network.py`` with the Python of the SeQUeNCe venv (``make bench-sequence``
creates ``.venv-sequence``); it imports nothing from this project. Prints one JSON object.

What runs: SeQUeNCe's discrete-event ``Timeline`` with one ``Event``/``Process`` per link
attempt per slot, each elementary link a SeQUeNCe ``Entity`` drawing from the numpy generator
of the ``Node`` at its left end, and one end-of-slot event that runs the N - 1 swaps once all N
links hold a pair. Every qubit lives in SeQUeNCe's ket-vector ``QuantumManager``: a successful
attempt sets its two memories' qubits to |Phi+>; a swap that succeeds (probability Q) runs
SeQUeNCe's own Bell-measurement circuit (``EntanglementSwappingA.circuit``) on the station's two
qubits and the Pauli correction of ``EntanglementSwappingB`` on the far end; any failure
discards every pair. This is exactly the slot protocol of DESIGN.md ("agile qkd repeater"),
with perfect elementary pairs and memories; the fidelity of each delivered pair to |Phi+> is
computed from SeQUeNCe's state as a check that the swaps are right (it must be 1).

What does not run: SeQUeNCe's physical generation (Barrett-Kok with photons, channels and
detectors), its RSVP reservations and rule-driven protocols. They run a different protocol (no
common slot, no global restart), their P comes out of loss and efficiencies rather than being
set, and in 0.8.5 the rules cannot set the swap success probability (``action_condition_set.py``
leaves it as a TODO); they also cost more events per attempt, so the time measured here is a
lower bound on what that stack would need. Memory decoherence is not compared: SeQUeNCe's
memories expire after a coherence time (a cutoff), they do not dephase as exp(-t/T2).

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

from sequence.components.circuit import Circuit
from sequence.entanglement_management.swapping import (
    EntanglementSwappingA,
    EntanglementSwappingB,
)
from sequence.kernel.entity import Entity
from sequence.kernel.event import Event
from sequence.kernel.process import Process
from sequence.kernel.timeline import Timeline
from sequence.topology.node import Node

SLOT_PS = 1_000_000  # one slot is 1 us of simulated time; only the slot count matters
PHI_PLUS = [complex(math.sqrt(0.5)), complex(0), complex(0), complex(math.sqrt(0.5))]
# The correction of the far end for each Bell-measurement outcome, as EntanglementSwappingB has it.
CORRECTIONS: dict[tuple[int, int], Circuit] = {
    (1, 0): EntanglementSwappingB.z_cir,
    (0, 1): EntanglementSwappingB.x_cir,
    (1, 1): EntanglementSwappingB.x_z_cir,
}


class ElementaryLink(Entity):
    """One elementary link: attempts once per slot while it holds no pair."""

    def __init__(
        self, name: str, timeline: Timeline, node: Node, success: float, qubits: tuple[int, int]
    ) -> None:
        super().__init__(name, timeline)
        self.node = node
        self.success = success
        self.qubits = qubits  # the left station's right memory, the right station's left memory
        self.holding = False

    def init(self) -> None:
        pass

    def attempt(self) -> None:
        if self.node.get_generator().random() < self.success:
            self.timeline.quantum_manager.set(list(self.qubits), PHI_PLUS)
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
        self.fidelities: list[float] = []

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
            if self.swap_all():
                self.samples.append(self.slot - self.started)
                self.started = self.slot
            for link in self.links:
                link.holding = False
        self.schedule_slot()

    def swap_all(self) -> bool:
        """Swap at every inner station, left to right; False at the first failure."""
        manager = self.timeline.quantum_manager
        generator = self.node.get_generator()
        for left, right in zip(self.links, self.links[1:], strict=False):
            if generator.random() >= self.swap:
                return False
            held, stored = left.qubits[1], right.qubits[0]
            outcome = manager.run_circuit(
                EntanglementSwappingA.circuit, [held, stored], generator.random()
            )
            correction = CORRECTIONS.get((outcome[held], outcome[stored]))
            if correction is not None:
                manager.run_circuit(correction, [right.qubits[1]])
        ends = [self.links[0].qubits[0], self.links[-1].qubits[1]]
        state = manager.get(ends[0])
        amplitudes = dict(zip(state.keys, range(len(state.keys)), strict=True))
        # The end pair is a two-qubit ket; its overlap with |Phi+> in the keys' order.
        vector = state.state
        i, j = amplitudes[ends[0]], amplitudes[ends[1]]
        overlap = sum(
            vector[k] * math.sqrt(0.5)
            for k in range(len(vector))
            if ((k >> (len(state.keys) - 1 - i)) & 1) == ((k >> (len(state.keys) - 1 - j)) & 1)
        )
        self.fidelities.append(abs(overlap) ** 2)
        return True


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
    manager = timeline.quantum_manager
    links = [
        ElementaryLink(
            f"link{i}", timeline, nodes[i], args.link_success, (manager.new(), manager.new())
        )
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
            "mean_fidelity": sum(chain.fidelities) / max(1, len(chain.fidelities)),
            "seconds": elapsed,
            "reached_target": reached,
            "seconds_to_target": needed,
        },
        sys.stdout,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

"""The network file's model: nodes, links and demands, validated by pydantic.

Hazmat: the model checks shapes, ranges and cross-references, and computes nothing. The
planner (:mod:`qkd.network.planner`) turns it into figures; the loader
(:mod:`qkd.network.loader`) reads it from TOML, JSON or YAML with located errors.

The minimal shape is DESIGN.md's ("QKD networks", "Network file")::

    [network]
    name = "metro-ring"

    [[nodes]]
    name = "A"
    kind = "trusted"        # trusted | endpoint | ground-station
    saes = ["app-a"]

    [[links]]
    id = "A-B"
    a = "A"
    b = "B"
    kind = "fixed"          # fixed | fibre | free-space | twin-field | repeater | satellite
    key_rate_bps = 1200.0

    [[demands]]
    from = "A"
    to = "D"
    rate_bps = 100.0

Links are undirected; several links between two nodes add up. A node of kind ``endpoint``
never relays for others.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "LINK_KINDS",
    "NODE_KINDS",
    "SCHEMA_VERSION",
    "Demand",
    "FibreLink",
    "FixedLink",
    "FreeSpaceLink",
    "Link",
    "Network",
    "NetworkInfo",
    "Node",
    "RepeaterLink",
    "SatelliteLink",
    "TwinFieldLink",
    "cross_reference_problems",
    "json_schema",
]

SCHEMA_VERSION = 1
NODE_KINDS = ("trusted", "endpoint", "ground-station")
# The kinds DESIGN.md names, all of which this version can plan.
LINK_KINDS = ("fixed", "fibre", "free-space", "twin-field", "repeater", "satellite")
# Kinds a later version will plan, refused with a message that says so (none today).
PLANNED_LATER: tuple[str, ...] = ()

Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")]
PositiveRate = Annotated[float, Field(gt=0, allow_inf_nan=False)]
# Key rates in bit/s: up to 1e15 (a petabit per second) for links, and demands from a
# microbit per second, so that the planner's LP sees a bounded range of numbers.
Rate = Annotated[float, Field(ge=0, le=1e15, allow_inf_nan=False)]
DemandRate = Annotated[float, Field(ge=1e-6, le=1e15, allow_inf_nan=False)]
Length = Annotated[float, Field(ge=0, le=100_000, allow_inf_nan=False)]
Probability = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class NetworkInfo(_Strict):
    """The ``[network]`` table."""

    name: Name
    description: str = ""


class Node(_Strict):
    """A KME site. ``trusted`` relays keys; ``endpoint`` never relays for others;
    ``ground-station`` is a trusted node that can end satellite links."""

    name: Name
    kind: Literal["trusted", "endpoint", "ground-station"]
    saes: list[Name] = Field(default_factory=list)
    # Where the node is (degrees north and east; both or neither). A ground station that
    # ends satellite links needs them; on any node they put it on the map of net plan --plot.
    latitude_deg: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)] | None = None
    longitude_deg: Annotated[float, Field(ge=-180, le=360, allow_inf_nan=False)] | None = None

    @model_validator(mode="after")
    def _both_or_neither(self) -> Node:
        if (self.latitude_deg is None) != (self.longitude_deg is None):
            given, missing = (
                ("latitude_deg", "longitude_deg")
                if self.longitude_deg is None
                else ("longitude_deg", "latitude_deg")
            )
            raise ValueError(f"node {self.name!r} has {given} but no {missing}; give both")
        return self


class _LinkBase(_Strict):
    id: Name
    a: Name
    b: Name
    # The most key the link's pool holds for relaying (bits); key beyond it is discarded.
    # None: one day of the link's key at its planned rate (agile net simulate).
    pool_bits: Annotated[float, Field(ge=0, le=1e18, allow_inf_nan=False)] | None = None


class FixedLink(_LinkBase):
    """A measured secret key rate, given directly (bit/s)."""

    kind: Literal["fixed"]
    key_rate_bps: Rate


class FibreLink(_LinkBase):
    """Decoy-state BB84 over fibre: the analytic rate of :mod:`qkd.physics.rates`.

    The key rate is the secret bits per pulse at the optimal signal intensity, for the
    preset's detector and fibre, times ``pulse_rate_hz``. ``method`` is ``vacuum+weak``
    (one weak decoy ``nu`` and the vacuum, Ma et al. PRA 72, 012326) or ``infinite``.
    """

    kind: Literal["fibre"]
    protocol: Literal["decoy-bb84"] = "decoy-bb84"
    preset: Literal["gys", "ingaas", "snspd"]
    length_km: Length
    pulse_rate_hz: PositiveRate
    method: Literal["vacuum+weak", "infinite"] = "vacuum+weak"
    nu: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 0.1


class TwinFieldLink(_LinkBase):
    """Twin-field QKD as a planning option: ``coefficient * sqrt(eta)`` secret bits per pulse.

    ``eta = 10^(-(attenuation_db_per_km * length_km + extra_loss_db) / 10)`` is the
    transmittance between the two ends (the central station sits in the middle). The key
    rate of twin-field protocols scales as ``sqrt(eta)`` (Lucamarini, Yuan, Dynes and
    Shields, Nature 557, 400 (2018)); ``coefficient`` holds everything else (detectors,
    error correction, phase stabilisation) and is the user's: fit it to a measured point.
    """

    kind: Literal["twin-field"]
    length_km: Length
    pulse_rate_hz: PositiveRate
    coefficient: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]
    attenuation_db_per_km: Annotated[float, Field(ge=0, le=10, allow_inf_nan=False)] = 0.2
    extra_loss_db: Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)] = 0.0

    @property
    def transmittance(self) -> float:
        loss_db = self.attenuation_db_per_km * self.length_km + self.extra_loss_db
        return float(10.0 ** (-loss_db / 10.0))


class RepeaterLink(_LinkBase):
    """A repeater chain (:mod:`qkd.physics.repeater`) feeding BBM92.

    The key rate is ``(1 / (mean_slots * slot_s)) * sifting * key_fraction`` bit/s: the
    end-to-end pairs per second, the fraction of them measured in matching bases
    (``sifting``, 1/2 for symmetric BBM92), and the BBM92 secret-key fraction of the chain's
    mean Werner fidelity (closed forms, no Monte Carlo). With ``cutoff_s`` a pair stored
    longer is discarded and its link retries; the figures then come from the exact recursion,
    which a long chain with a long cutoff can outgrow (the plan then reports the error).
    """

    kind: Literal["repeater"]
    segments: Annotated[int, Field(ge=1, le=1024)]
    link_success: Probability
    swap_success: Probability = 1.0
    fidelity: Annotated[float, Field(ge=0.25, le=1, allow_inf_nan=False)] = 1.0
    slot_s: PositiveRate
    t2_s: PositiveRate | None = None
    cutoff_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    sifting: Probability = 0.5


class SatelliteLink(_LinkBase):
    """A trusted satellite that shares key with two ground stations during its passes and
    relays between them, as Micius did between Xinglong and Graz (XOR of its two keys).

    The orbit is a TLE (``tle``, two lines; SGP4 through the ``satellite`` extra) or a
    circular orbit (``altitude_km``, ``inclination_deg``, node and argument of latitude at
    ``epoch``, with the J2 drift). The key rate is the smaller of the two stations' keys over
    ``days`` days divided by the time (:mod:`qkd.physics.satellite`: passes above
    ``min_elevation_deg``, and in the dark when ``max_sun_elevation_deg`` is given; downlink
    loss; decoy BB84 with finite-key effects over each pass). Both ends must be
    ``ground-station`` nodes with ``latitude_deg`` and ``longitude_deg``. The optics default
    to the Micius-like calibration of :class:`qkd.physics.satellite.OpticalLink`.
    """

    kind: Literal["satellite"]
    tle: (
        Annotated[
            list[Annotated[str, Field(min_length=69, max_length=69)]],
            Field(min_length=2, max_length=2),
        ]
        | None
    ) = None
    altitude_km: Annotated[float, Field(ge=100, le=100_000, allow_inf_nan=False)] | None = None
    inclination_deg: Annotated[float, Field(ge=0, le=180, allow_inf_nan=False)] | None = None
    raan_deg: Annotated[float, Field(ge=0, lt=360, allow_inf_nan=False)] = 0.0
    start_deg: Annotated[float, Field(ge=0, lt=360, allow_inf_nan=False)] = 0.0
    epoch: AwareDatetime | None = None
    min_elevation_deg: Annotated[float, Field(ge=0, lt=90, allow_inf_nan=False)] = 15.0
    max_sun_elevation_deg: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)] | None = None
    days: Annotated[float, Field(gt=0, le=366, allow_inf_nan=False)] = 1.0
    step_s: Annotated[float, Field(gt=0, le=60, allow_inf_nan=False)] = 1.0
    pulse_rate_hz: PositiveRate = 100e6
    detector_efficiency: Probability = 0.5
    wavelength_m: Annotated[float, Field(gt=0, lt=1e-4, allow_inf_nan=False)] = 850e-9
    transmitter_m: Annotated[float, Field(gt=0, le=10, allow_inf_nan=False)] = 0.30
    receiver_m: Annotated[float, Field(gt=0, le=50, allow_inf_nan=False)] = 1.0
    divergence_rad: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] | None = 10e-6
    zenith_transmittance: Probability = 0.8
    seeing_arcsec: Annotated[float, Field(gt=0, le=60, allow_inf_nan=False)] | None = 2.0
    field_of_view_rad: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 8e-6
    pointing_loss_db: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] = 3.0
    optics_loss_db: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] = 3.5

    @model_validator(mode="after")
    def _one_orbit(self) -> SatelliteLink:
        circular = self.altitude_km is not None or self.inclination_deg is not None
        if self.tle is not None:
            if circular or self.epoch is not None:
                raise ValueError(
                    "give the orbit as tle or as altitude_km and inclination_deg, not both "
                    "(a TLE carries its own epoch)"
                )
            from qkd.physics.satellite import tle_checksum_problem

            for number, line in enumerate(self.tle, start=1):
                problem = tle_checksum_problem(line, number)
                if problem:
                    raise ValueError(problem)
        elif self.altitude_km is None or self.inclination_deg is None:
            raise ValueError("give the orbit: tle, or both altitude_km and inclination_deg")
        return self


class FreeSpaceLink(_LinkBase):
    """Decoy-state BB84 over a terrestrial free-space path (:mod:`qkd.physics.link`).

    The channel loss is ``loss_db`` as measured, or it follows from the path:
    ``length_km`` with the two apertures and the beam divergence (geometric loss), the air's
    ``attenuation_db_per_km`` and ``extra_loss_db`` (pointing, turbulence, optics);
    :meth:`qkd.physics.link.FreeSpaceChannel.horizontal`. The detector (efficiency, dark
    counts, misalignment, error-correction efficiency) is the preset's, without its fibre.
    The key rate is the secret bits per pulse at the optimal signal intensity times
    ``pulse_rate_hz``.
    """

    kind: Literal["free-space"]
    protocol: Literal["decoy-bb84"] = "decoy-bb84"
    preset: Literal["gys", "ingaas", "snspd"]
    pulse_rate_hz: PositiveRate
    loss_db: Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)] | None = None
    length_km: Annotated[float, Field(ge=0, le=10_000, allow_inf_nan=False)] | None = None
    transmitter_m: Annotated[float, Field(gt=0, le=10, allow_inf_nan=False)] = 0.15
    receiver_m: Annotated[float, Field(gt=0, le=50, allow_inf_nan=False)] = 1.0
    divergence_rad: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 20e-6
    attenuation_db_per_km: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)] = 0.07
    extra_loss_db: Annotated[float, Field(ge=0, le=1000, allow_inf_nan=False)] = 0.0
    method: Literal["vacuum+weak", "infinite"] = "vacuum+weak"
    nu: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 0.1

    @model_validator(mode="after")
    def _one_loss(self) -> FreeSpaceLink:
        if (self.loss_db is None) == (self.length_km is None):
            raise ValueError(
                "give the channel as loss_db (measured) or as length_km (with the optics), "
                "one of the two"
            )
        return self

    @property
    def channel_loss_db(self) -> float:
        """The channel loss in dB, given or computed from the path."""
        if self.loss_db is not None:
            return self.loss_db
        from qkd.physics.link import FreeSpaceChannel

        assert self.length_km is not None  # _one_loss
        channel = FreeSpaceChannel.horizontal(
            length_km=self.length_km,
            transmitter_m=self.transmitter_m,
            receiver_m=self.receiver_m,
            divergence_rad=self.divergence_rad,
            attenuation_db_per_km=self.attenuation_db_per_km,
            extra_loss_db=self.extra_loss_db,
        )
        return channel.losses_db()[0]


Link = Annotated[
    FixedLink | FibreLink | FreeSpaceLink | TwinFieldLink | RepeaterLink | SatelliteLink,
    Field(discriminator="kind"),
]


class Demand(_Strict):
    """A key rate wanted between two nodes (bit/s)."""

    from_: Name = Field(alias="from")
    to: Name
    rate_bps: DemandRate


class Network(_Strict):
    """A whole network file. Cross-references are checked by :func:`cross_reference_problems`
    (the loader runs it and locates each problem)."""

    network: NetworkInfo
    nodes: list[Node] = Field(min_length=1, max_length=1_000_000)
    links: list[Link] = Field(default_factory=list, max_length=10_000_000)
    demands: list[Demand] = Field(default_factory=list, max_length=1_000_000)

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)


FieldPath = tuple[str | int, ...]


def cross_reference_problems(network: Network) -> Iterator[tuple[FieldPath, str]]:
    """Problems between fields: duplicate names, links and demands naming unknown nodes."""
    names: dict[str, int] = {}
    for i, node in enumerate(network.nodes):
        if node.name in names:
            yield (
                ("nodes", i, "name"),
                (
                    f"node {node.name!r} is already defined (nodes.{names[node.name]}); "
                    "give every node its own name"
                ),
            )
        else:
            names[node.name] = i
    ids: dict[str, int] = {}
    for i, link in enumerate(network.links):
        if link.id in ids:
            yield (
                ("links", i, "id"),
                (
                    f"link id {link.id!r} is already used by links.{ids[link.id]}; "
                    "give every link its own id"
                ),
            )
        else:
            ids[link.id] = i
        for end in ("a", "b"):
            value = getattr(link, end)
            if value not in names:
                yield ("links", i, end), f"no node named {value!r}; define it under [[nodes]]"
        if link.a == link.b:
            yield ("links", i, "b"), f"the link joins {link.a!r} to itself; name two nodes"
        if isinstance(link, SatelliteLink):
            for end in ("a", "b"):
                name = getattr(link, end)
                if name not in names:
                    continue
                node = network.nodes[names[name]]
                if node.kind != "ground-station":
                    yield (
                        ("links", i, end),
                        (f"a satellite link ends at ground stations; {name!r} is {node.kind}"),
                    )
                elif node.latitude_deg is None or node.longitude_deg is None:
                    yield (
                        ("links", i, end),
                        (
                            f"ground station {name!r} needs latitude_deg and longitude_deg "
                            "for its satellite passes"
                        ),
                    )
    pairs: dict[tuple[str, str], int] = {}
    for i, demand in enumerate(network.demands):
        for field, value in (("from", demand.from_), ("to", demand.to)):
            if value not in names:
                yield ("demands", i, field), f"no node named {value!r}; define it under [[nodes]]"
        if demand.from_ == demand.to:
            yield ("demands", i, "to"), "a demand needs two different nodes"
        pair = (demand.from_, demand.to)
        if pair in pairs:
            yield (
                ("demands", i),
                (
                    f"the pair ({demand.from_!r}, {demand.to!r}) is already demanded by "
                    f"demands.{pairs[pair]}; add the rates into one demand"
                ),
            )
        else:
            pairs[pair] = i


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a network file (``agile net schema``)."""
    schema = Network.model_json_schema(mode="validation", by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://qkd-agile.invalid/schema/network-v{SCHEMA_VERSION}.json"
    return schema

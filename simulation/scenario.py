"""The scenario schema: versioned pydantic sections, each nesting or deriving from the config
of the layer that owns its settings (`section_of`), so a setting is declared once. The YAML
file is read by simulation/scenario_file.py, whose errors name the field's path and line.

Only the runner reads a scenario; it hands plain values and configs down to the actors,
which never see the scenario. Paths and object-store locations are checked against the
operator's roots by simulation/scenario_paths.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from actors.devices.arrivals import ArrivalSpec, Think
from actors.devices.config import FleetPlay, RequestBatching, RetryPolicy
from actors.devices.policies import Always, PerImpression, PolicySpec, RequestPolicy
from actors.devices.profiles import COMPUTE_TIERS, NETWORK_CLASSES, UPLOAD_MODES
from actors.service.autoscaling import Autoscaling
from actors.storage.sink import FlushPolicy
from duet.backbone import BACKBONES
from duet.method import METHODS
from duet.names import CONDITIONS, DEFAULT_CONDITION, NECKS
from duet.registry import load_plugins
from pipelines.datasets import DATASETS
from pipelines.names import ImageInput
from simulation.scenario_paths import InputDir, InputLocation, OutputLocation
from simulation.train_recipe import TRAIN_SETTINGS, TrainOptions

SCHEMA_VERSION = 1

C = TypeVar("C")
PositiveInt = Annotated[int, Field(gt=0)]
Fraction = Annotated[float, Field(gt=0, le=1)]
Weights = dict[str, Annotated[float, Field(ge=0)]]


class Section(BaseModel):
    """Unknown keys are errors (a typo must not silently fall back to a default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def config(self, cls: type[C]) -> C:
        """The layer's config ``cls`` built from this section's fields of the same names."""
        return cls(**{n: getattr(self, n) for n in cls.__pydantic_fields__})  # type: ignore[attr-defined]


def section_of(name: str, *configs: type, only: Sequence[str] | None = None) -> type[Section]:
    """A scenario section made of the fields of layers' configs (pydantic dataclasses),
    ``only`` those named if given: the same types, bounds, defaults and descriptions, declared
    once, in the config. `Section.config` builds the config back from the section."""
    fields = {n: f for c in configs for n, f in c.__pydantic_fields__.items()}  # type: ignore[attr-defined]
    names = list(fields) if only is None else only
    return create_model(
        name, __base__=Section, **{n: (fields[n].annotation, fields[n]) for n in names}
    )


class DataSpec(section_of("ImageFields", ImageInput)):
    """The data a run replays; the image fields are `pipelines.names.ImageInput`'s."""

    dataset: Annotated[str, AfterValidator(DATASETS.check)] = Field(
        description="a registered dataset"
    )
    prepared: InputLocation | None = Field(
        None, description="a `duet-sim data prepare` output; else OUT/data"
    )
    data_dir: InputDir | None = Field(None, description="raw datasets root; default $DUET_DATA_DIR")
    seed: int = Field(0, description="negative sampling, folds and generated data")
    options: dict[str, int | None] = Field(
        {}, description="SessionOptions overrides of the dataset's defaults"
    )
    synthetic: dict[str, int | float | bool] = Field(
        {}, description="a generated dataset's knobs (Dataset.knobs)"
    )

    @field_validator("options")
    @classmethod
    def _options(cls, value: dict[str, Any]) -> dict[str, Any]:
        from pipelines.sessions import SessionOptions

        _bind(SessionOptions, value)
        return value

    @model_validator(mode="after")
    def _knobs(self) -> DataSpec:
        if "dataset" not in self.model_fields_set:  # its own error is reported
            return self
        knobs = DATASETS[self.dataset].knobs()
        if self.synthetic and knobs is None:
            raise ValueError(f"synthetic knobs apply to generated datasets, not {self.dataset}")
        if knobs is not None:
            _bind(knobs, self.synthetic)
        if self.image != ImageInput() and DATASETS[self.dataset].kind != "images":
            raise ValueError(
                f"image_size/image_channels apply to image datasets, not {self.dataset}"
            )
        return self

    @property
    def image(self) -> ImageInput:
        return self.config(ImageInput)

    @property
    def knobs(self) -> Any:
        """The generated dataset's knobs object (None for data read from files)."""
        knobs = DATASETS[self.dataset].knobs()
        return knobs(**self.synthetic) if knobs else None

    @property
    def session_options(self):
        """The protocol: the dataset's defaults with ``options`` applied."""
        from pipelines.prepare import default_options

        return dataclasses.replace(default_options(self.dataset), **self.options)


# How missing checkpoints are trained: the training settings of `duet-sim train`
TrainSpec = section_of("TrainSpec", TrainOptions, only=TRAIN_SETTINGS)


class ModelSpec(Section):
    backbones: Annotated[
        list[Annotated[str, AfterValidator(BACKBONES.check)]], Field(min_length=1)
    ] = Field(description="at least one registered backbone; each must fit the dataset's kind")
    checkpoints: dict[str, InputLocation] = Field(
        {}, description='"<backbone>/<name>" -> run dir; else trained'
    )
    train: TrainSpec = Field(  # type: ignore[valid-type]
        TrainSpec(), description="how missing checkpoints train (`duet-sim train`'s settings)"
    )

    @field_validator("checkpoints")
    @classmethod
    def _keys(cls, value: dict[str, Path]) -> dict[str, Path]:
        for key in value:
            backbone, _, name = key.partition("/")
            if backbone not in BACKBONES or not name:
                raise ValueError(
                    f"checkpoint key {key!r}: expected '<backbone>/<method name>' "
                    f"with backbone in {list(BACKBONES)}"
                )
        return value


class NetworkSpec(Section):
    bandwidth_mb_s: Annotated[float, Field(gt=0)] = Field(
        description="megabytes per second (paper Table 3)"
    )
    rtt_s: Annotated[float, Field(ge=0)] = Field(description="round-trip time, seconds")


class AvailabilitySpec(Section):
    online: Fraction = Field(1.0, description="chance the device shows up for each of its sessions")
    churn: Annotated[float, Field(ge=0, lt=1)] = Field(
        0.0, description="chance it leaves for good after a session"
    )


class ProfilesSpec(Section):
    """Shares of devices per profile value (normalized; need not sum to 1)."""

    network: Weights = Field(
        {name: 1.0 for name in NETWORK_CLASSES},
        description="network class shares (the paper's Table 3 rates, or fleet.network_classes)",
    )
    compute: Weights = Field(
        {name: 1.0 for name in COMPUTE_TIERS},
        description="compute tier shares: times measured here, times 2, 5 or 10",
    )
    upload: Weights = Field({"raw": 1.0}, description="upload mode shares: raw or embedding")
    backbone: Weights | None = Field(None, description="default: model.backbones, equal shares")
    availability: AvailabilitySpec = Field(
        AvailabilitySpec(), description="whether a device shows up, and whether it stays"
    )

    @field_validator("upload")
    @classmethod
    def _upload(cls, value: dict[str, float]) -> dict[str, float]:
        return _known(value, UPLOAD_MODES, "upload mode")

    @field_validator("compute")
    @classmethod
    def _compute(cls, value: dict[str, float]) -> dict[str, float]:
        return _known(value, COMPUTE_TIERS, "compute tier")

    @field_validator("network", "compute", "upload", "backbone")
    @classmethod
    def _positive_total(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None and sum(value.values()) <= 0:
            raise ValueError(f"weights must have a positive sum, got {value}")
        return value


class FleetSpec(section_of("FleetPlayFields", FleetPlay)):
    """The fleet: its devices and actors; how an actor plays them is `FleetPlay`'s fields."""

    devices: PositiveInt = Field(description="simulated devices; device d replays user d mod U")
    sessions_per_device: PositiveInt = Field(3, description="session slots per device")
    actors: PositiveInt = Field(
        2, description="fleet actors; devices are spread by device_id % actors"
    )
    max_restarts: Annotated[int, Field(ge=0)] = Field(
        3, description="Ray restarts of a fleet actor; a restarted one skips what is on disk"
    )
    num_cpus: Annotated[float, Field(ge=0)] = Field(
        0.25, description="logical CPUs per actor (Serve takes 1)"
    )
    network_classes: dict[str, NetworkSpec] = Field({}, description="extra or redefined classes")
    profiles: ProfilesSpec = Field(ProfilesSpec(), description="shares of device profiles")
    arrivals: ArrivalSpec = Field(  # type: ignore[valid-type]
        Think(),
        description="when sessions start (actors/devices/arrivals.py): think, "
        "trace, poisson or diurnal",
    )

    @field_validator("profiles")
    @classmethod
    def _networks(cls, value: ProfilesSpec, info: ValidationInfo) -> ProfilesSpec:
        known = set(NETWORK_CLASSES) | set(info.data.get("network_classes", {}))
        unknown = sorted(set(value.network) - known)
        if unknown:
            raise ValueError(
                f"network: unknown network class(es) {unknown}; known: {sorted(known)}"
            )
        return value


class GeneratorSpec(section_of("GeneratorFields", RequestBatching, RetryPolicy)):
    """The generator service (its replicas and HTTP proxy), and how devices reach it: the
    fleet's request batching (`RequestBatching`) and retries (`RetryPolicy`)."""

    replicas: PositiveInt = Field(
        1, description="Serve replicas of the generator (a fixed number; or autoscaling)"
    )
    autoscaling: Autoscaling | None = Field(
        None, description="Serve's autoscaling between min and max replicas, instead of replicas"
    )
    slo_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = Field(
        1.0, description="the generator latency a device may wait for its parameters (the SLO)"
    )
    num_cpus: Annotated[float, Field(gt=0)] = Field(1.0, description="logical CPUs per replica")
    http_port: Annotated[int, Field(ge=1, le=65535)] | None = Field(
        None, description="None: handle only, no proxy"
    )
    http_host: str = Field(
        "127.0.0.1", description="the proxy's bind address; docs/deployment.md before changing"
    )


class DeviceGroup(Section):
    """Devices a shift hits: those matching every given profile filter, then ``fraction`` of
    them. Shifts with identical blocks hit the same devices (to stack operators)."""

    fraction: Fraction = Field(1.0, description="the share of the matching devices hit")
    network: list[str] | None = Field(None, description="only devices of these network classes")
    compute: list[str] | None = Field(None, description="only devices of these compute tiers")
    upload: list[str] | None = Field(None, description="only devices of these upload modes")
    backbone: list[str] | None = Field(None, description="only devices of these backbones")


class ShiftSpec(Section):
    operator: str = Field(description="a registered shift operator (pipelines/shifts.py SHIFTS)")
    params: dict[str, Any] = Field({}, description="the operator's parameters (its fields)")
    devices: DeviceGroup = Field(DeviceGroup(), description="the devices it hits")
    at_session: Annotated[int, Field(ge=0)] = Field(0, description="first shifted session_index")
    until_session: PositiveInt | None = Field(
        None, description="first unshifted one again; None: to the end"
    )

    @field_validator("operator")
    @classmethod
    def _operator(cls, value: str) -> str:
        from pipelines.shifts import SHIFTS

        SHIFTS.check(value)
        return value

    @field_validator("params")
    @classmethod
    def _params(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        from pipelines.shifts import build_shift

        if "operator" in info.data:  # else the operator's own error is reported
            try:
                build_shift({"type": info.data["operator"], **value})
            except TypeError as exc:  # pydantic reports ValueErrors only
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _window(self) -> ShiftSpec:
        if self.until_session is not None and self.until_session <= self.at_session:
            raise ValueError(
                f"until_session ({self.until_session}) must be > at_session ({self.at_session})"
            )
        return self


class OutputSpec(section_of("FlushFields", FlushPolicy)):
    """Where the run writes, and how often its fleets flush (`FlushPolicy`)."""

    dir: OutputLocation = Field(
        "runs/scenario", description="a folder or an s3:// URI (docs/deployment.md)"
    )


class MetricsSpec(Section):
    """Where the Prometheus exporter listens (observability; off by default)."""

    enabled: bool = Field(False, description="serve the run's metrics to Prometheus")
    host: str = Field("127.0.0.1", description="the exporter's bind address")
    port: Annotated[int, Field(ge=1, le=65535)] = Field(9108, description="the exporter's port")


class MethodSpec(Section):
    """One method of a run: a registered method (duet/method.py), its options,
    its request policy, and the name its rows, summary, report and metrics carry. ``- duet``
    in the YAML is ``{name: duet, method: duet}``; ``{name: duet-history, method: duet,
    condition: history}`` is DUET as the authors' code runs it, one request per scored
    impression; ``{name: duet-every3, method: duet, policy: {type: every_k, k: 3}}`` asks
    the cloud on every third session and keeps its parameters in between. Names that run the
    same method with the same condition and neck share one checkpoint and one generator."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = Field(
        description="what rows, summary, report and metrics call it; distinct"
    )
    method: str = Field(description="a registered method (duet/method.py)")
    condition: Literal[CONDITIONS] = Field(  # type: ignore[valid-type]
        DEFAULT_CONDITION, description="what its generator reads (conditioned methods)"
    )
    neck: Literal[NECKS] | None = Field(  # type: ignore[valid-type]
        None, description="its generator's neck (conditioned methods); default model.train.neck"
    )
    policy: PolicySpec | None = Field(  # type: ignore[valid-type]
        None,
        description="when a device asks the cloud (generated methods); default: always, "
        "per_impression with condition history",
    )

    @field_validator("method")
    @classmethod
    def _registered(cls, value: str) -> str:
        if METHODS[value].needs_history:
            raise ValueError(
                f"{value!r} adapts on each user's labelled training rows, which a device does "
                "not hold: it is an offline baseline (`duet-sim train`), not a fleet method"
            )
        return value

    @model_validator(mode="after")
    def _options(self) -> MethodSpec:
        cls = METHODS[self.method]
        if self.neck is not None and not cls.conditioned:
            raise ValueError(f"neck applies to conditioned methods, not {self.method!r}")
        if self.condition != DEFAULT_CONDITION and not cls.conditioned:
            raise ValueError(
                f"condition {self.condition!r} applies to conditioned methods, not {self.method!r}"
            )
        if self.policy is not None and not cls.generated:
            raise ValueError(f"policy applies to methods the cloud generates, not {self.method!r}")
        history = self.condition == "history"
        if self.policy is not None and self.policy.per_impression != history:
            raise ValueError(
                "policy per_impression and condition history go together: a history-"
                "conditioned method asks per scored impression and caches nothing"
            )
        return self

    @property
    def request_policy(self) -> RequestPolicy | None:
        """The policy this method runs under (None for methods that never ask the cloud)."""
        if not METHODS[self.method].generated:
            return None
        if self.policy is not None:
            return self.policy
        return PerImpression() if self.condition == "history" else Always()

    @property
    def model_identity(self) -> tuple[str, str, str | None]:
        """What its checkpoint is trained as: (method trained, condition, neck)."""
        trained = METHODS[self.method].trained_as()
        if not METHODS[trained].conditioned:  # condition and neck are a generator's inputs
            return (trained, DEFAULT_CONDITION, None)
        return (trained, self.condition, self.neck)


class Scenario(Section):
    version: Literal[1] = Field(description="the schema's version")
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = Field(
        description="letters, digits and _.-, at most 64"
    )
    description: str = Field("", description="free text")
    # imported before any name is checked: listed first, so pydantic validates it first
    plugins: list[Annotated[str, Field(pattern=r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")]] = Field(
        [], description="plugin modules (docs/plugins.md), imported before the names are checked"
    )
    seed: int = Field(0, description="profiles, device groups, virtual clocks, shift randomness")
    data: DataSpec = Field(description="what the devices replay")
    model: ModelSpec = Field(description="the checkpoints the methods score with")
    methods: Annotated[list[MethodSpec], Field(min_length=1)] = Field(
        description="the methods compared; must include base, the reference of every gain"
    )
    fleet: FleetSpec = Field(description="the devices")
    generator: GeneratorSpec = Field(GeneratorSpec(), description="the generator service")
    shifts: list[ShiftSpec] = Field([], description="distribution shifts on device groups")
    output: OutputSpec = Field(OutputSpec(), description="where the run writes")
    metrics: MetricsSpec = Field(MetricsSpec(), description="the Prometheus exporter")

    @field_validator("plugins")
    @classmethod
    def _import(cls, value: list[str]) -> list[str]:
        load_plugins(value)
        return value

    @field_validator("methods", mode="before")
    @classmethod
    def _method_names(cls, value: Any) -> Any:
        """A bare name is the registered method of that name."""
        if isinstance(value, list):
            return [{"name": v, "method": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: list[MethodSpec]) -> list[MethodSpec]:
        names = [m.name for m in value]
        if not any(m.name == "base" and m.method == "base" for m in value):
            raise ValueError("methods must include 'base', the paired reference of every gain")
        if len(set(names)) != len(names):
            raise ValueError(f"method names must be distinct, got {names}")
        return value

    @property
    def method_names(self) -> list[str]:
        return [m.name for m in self.methods]

    @property
    def method_of(self) -> dict[str, str]:
        """Method name -> the registered method it runs."""
        return {m.name: m.method for m in self.methods}

    @property
    def model_owner(self) -> dict[str, str]:
        """Method name -> the name whose checkpoint it scores with: the first method of the
        scenario with the same `MethodSpec.model_identity` (``finetune`` -> ``base``)."""
        first: dict[tuple, str] = {}
        for m in self.methods:
            first.setdefault(m.model_identity, m.name)
        return {m.name: first[m.model_identity] for m in self.methods}

    @property
    def policy_references(self) -> dict[str, str]:
        """Generated name -> what its policy is compared with: the first name running the
        same model under ``always`` (itself, for one that does; absent when none does)."""
        owner, policies = self.model_owner, self.policies
        always = {}
        for name, policy in policies.items():
            if isinstance(policy, Always):
                always.setdefault(owner[name], name)
        return {n: always[owner[n]] for n in policies if owner[n] in always}

    @property
    def policies(self) -> dict[str, RequestPolicy]:
        """Method name -> its request policy, for the methods the cloud generates."""
        return {m.name: p for m in self.methods if (p := m.request_policy) is not None}

    @model_validator(mode="after")
    def _cross_checks(self) -> Scenario:
        """Checks across sections; each message starts with the field it blames (``a.b[0].c:``),
        which `_problem` turns into that field's line."""
        from pipelines.shifts import SHIFTS

        kind = self.kind
        trained = sorted(set(self.model_owner.values()))
        for key in self.model.checkpoints:
            if key.partition("/")[2] not in trained:
                raise ValueError(
                    f"model.checkpoints: key {key!r} names no trained method of "
                    f"this run; expected '<backbone>/<name>' with name in {trained}"
                )
        for backbone in self.model.backbones:
            if BACKBONES[backbone].kind != kind:
                raise ValueError(
                    f"model.backbones: {backbone!r} does not fit {kind} dataset "
                    f"{self.data.dataset!r}"
                )
        extra = set(self.fleet.profiles.backbone or {}) - set(self.model.backbones)
        if extra:
            raise ValueError(
                f"fleet.profiles.backbone: names {sorted(extra)}, not in model.backbones"
            )
        if self.generator.autoscaling and "replicas" in self.generator.model_fields_set:
            raise ValueError(
                "generator.replicas: a fixed number of replicas and autoscaling exclude each "
                "other; set autoscaling.min_replicas and max_replicas"
            )
        arrivals = self.fleet.arrivals
        if arrivals.timestamps and not DATASETS[self.data.dataset].timestamps:
            raise ValueError(
                f"fleet.arrivals: {arrivals.type!r} replays recorded start times; dataset "
                f"{self.data.dataset!r} has none (diurnal or poisson arrive without them)"
            )
        for i, shift in enumerate(self.shifts):
            acts_on = SHIFTS[shift.operator].kind or kind
            if acts_on != kind:
                raise ValueError(
                    f"shifts[{i}].operator: {shift.operator!r} acts on {acts_on}, "
                    f"dataset {self.data.dataset!r} is {kind}"
                )
        return self

    @property
    def kind(self) -> str:
        return DATASETS[self.data.dataset].kind

    @property
    def backbone_weights(self) -> dict[str, float]:
        return self.fleet.profiles.backbone or {b: 1.0 for b in self.model.backbones}


def _bind(config_cls: type, kwargs: dict[str, Any]) -> None:
    """Build ``config_cls(**kwargs)`` once so its own checks run; name unknown keys."""
    known = [f.name for f in dataclasses.fields(config_cls)]
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise ValueError(f"unknown key(s) {unknown}; accepted: {known}")
    try:
        config_cls(**kwargs)
    except TypeError as exc:  # pydantic reports ValueErrors only
        raise ValueError(str(exc)) from None


def _known(value: dict[str, float], known, what: str) -> dict[str, float]:
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise ValueError(f"unknown {what}(s) {unknown}; known: {sorted(known)}")
    return value

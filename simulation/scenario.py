"""Scenario files: a versioned pydantic schema and a YAML loader whose errors name the field's
path and line (``quickstart.yaml: fleet.devices (line 12): Input should be greater than 0``).

Only the runner reads a scenario; it hands plain values down to the actors (STYLE item 3).

``data.prepared``, ``model.checkpoints`` and ``output.dir`` may be object-store URIs
(``s3://bucket/prefix``, actors/storage/uris.py: the bucket must exist, credentials come from
the environment, never from the file). Local paths in a scenario (those, and
``data.data_dir``) are resolved against the current working directory, which is the repository
root for ``make`` and the uploaded working dir for ``ray job submit --working-dir .``. Relative
or absolute, a path must resolve (symlinks followed) inside one of the roots the operator
configured (`path_roots`): a scenario file can name data, but cannot make a run read or
write anywhere else. Input folders must exist, so a typo fails validation, not a run.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from actors.devices.policies import Always, PerImpression, PolicySpec, RequestPolicy
from actors.devices.profiles import COMPUTE_TIERS, NETWORK_CLASSES, UPLOAD_MODES
from actors.storage.uris import check_uri, is_uri
from duet.backbone import BACKBONES
from duet.method import METHODS
from duet.names import CONDITIONS, DEFAULT_CONDITION, NECKS
from duet.registry import load_plugins
from pipelines.datasets import DATASETS
from pipelines.names import ImageInput
from simulation.train_recipe import TRAIN_SETTINGS, TrainOptions

SCHEMA_VERSION = 1
MAX_SCENARIO_BYTES = 256 * 1024  # a scenario is a page of YAML; bigger is a mistake or an attack
ROOTS_ENV = "DUET_SIM_ROOTS"  # extra folders scenario paths may point into, os.pathsep-separated

PositiveInt = Annotated[int, Field(gt=0)]
Fraction = Annotated[float, Field(gt=0, le=1)]
Weights = dict[str, Annotated[float, Field(ge=0)]]


def path_roots() -> list[Path]:
    """Folders a scenario's paths may resolve into: the working directory (where relative paths
    start), ``$DUET_DATA_DIR`` and each folder of ``$DUET_SIM_ROOTS``. They come from the
    operator's environment, never from the scenario, which is the input being confined."""
    from pipelines.prepare import DATA_DIR_ENV

    extra = [os.environ.get(DATA_DIR_ENV, ""), *os.environ.get(ROOTS_ENV, "").split(os.pathsep)]
    return [Path.cwd().resolve(), *(Path(p).resolve() for p in extra if p)]


def resolve_path(value: str | Path, roots: Sequence[Path] | None = None) -> Path:
    """A scenario path made absolute: relative ones start at the first root (default: the
    working directory). ``..`` and symlinks are resolved before the check.

    Raises:
        ValueError: the path resolves outside every root.
    """
    roots = path_roots() if roots is None else [Path(r).resolve() for r in roots]
    resolved = (roots[0] / value).resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        raise ValueError(
            f"{str(value)!r} resolves to {resolved}, outside the allowed roots "
            f"{[str(r) for r in roots]}; add a root with ${ROOTS_ENV}"
        )
    return resolved


def _rooted(value: Path) -> Path:
    resolve_path(value)
    return value


def _existing_dir(value: Path) -> Path:
    if not resolve_path(value).is_dir():
        raise ValueError(f"directory {str(value)!r} not found")
    return value


def _input_location(value: str) -> str:
    if is_uri(value):
        return check_uri(value, must_exist=True)
    _existing_dir(Path(value))
    return value


def _output_location(value: str) -> str:
    if is_uri(value):
        return check_uri(value, must_exist=False)
    _rooted(Path(value))
    return value


RootedPath = Annotated[Path, AfterValidator(_rooted)]  # may not exist yet (outputs)
InputDir = Annotated[Path, AfterValidator(_existing_dir)]  # must exist (raw data)
# a local folder or an object-store URI (actors/storage/uris.py): inputs must exist, an
# output's bucket must; local ones stay inside the operator's roots
InputLocation = Annotated[str, AfterValidator(_input_location)]
OutputLocation = Annotated[str, AfterValidator(_output_location)]


class ScenarioError(ValueError):
    """Every problem of a scenario, one per line: ``file: path (line n): message``."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class Section(BaseModel):
    """Unknown keys are errors (a typo must not silently fall back to a default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- data and model --------------------------------------------------------------------------
def section_of(config: type, names: Sequence[str], name: str) -> type[Section]:
    """A scenario section made of some fields of a layer's config (a pydantic dataclass):
    the same types, bounds, defaults and descriptions, declared once, in the config."""
    fields = config.__pydantic_fields__  # type: ignore[attr-defined]
    return create_model(
        name, __base__=Section, **{n: (fields[n].annotation, fields[n]) for n in names}
    )


class DataSpec(section_of(ImageInput, ("image_size", "image_channels"), "ImageFields")):
    """The data a run replays; the image fields are `pipelines.names.ImageInput`'s."""

    dataset: Annotated[str, AfterValidator(DATASETS.check)]  # a registered dataset
    prepared: InputLocation | None = None  # a `duet-sim data prepare` output; else OUT/data
    data_dir: InputDir | None = None  # raw datasets root; default $DUET_DATA_DIR
    seed: int = 0  # negative sampling, folds and generated data
    options: dict[str, int | None] = {}  # SessionOptions overrides of the dataset's defaults
    synthetic: dict[str, int | float | bool] = {}  # a generated dataset's knobs (Dataset.knobs)

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
        return ImageInput(self.image_size, self.image_channels)

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
TrainSpec = section_of(TrainOptions, TRAIN_SETTINGS, "TrainSpec")


class ModelSpec(Section):
    backbones: Annotated[
        list[Annotated[str, AfterValidator(BACKBONES.check)]], Field(min_length=1)
    ]  # registered backbones (duet/backbone.py)
    checkpoints: dict[str, InputLocation] = {}  # "<backbone>/<name>" -> run dir; else trained
    train: TrainSpec = TrainSpec()  # type: ignore[valid-type]

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


# ---- fleet ---------------------------------------------------------------------------------
class NetworkSpec(Section):
    bandwidth_mb_s: Annotated[float, Field(gt=0)]  # megabytes per second (paper Table 3)
    rtt_s: Annotated[float, Field(ge=0)]


class AvailabilitySpec(Section):
    online: Fraction = 1.0  # chance the device shows up for each of its sessions
    churn: Annotated[float, Field(ge=0, lt=1)] = 0.0  # chance it leaves for good after a session


class ProfilesSpec(Section):
    """Shares of devices per profile value (normalized; need not sum to 1)."""

    network: Weights = {name: 1.0 for name in NETWORK_CLASSES}
    compute: Weights = {name: 1.0 for name in COMPUTE_TIERS}
    upload: Weights = {"raw": 1.0}
    backbone: Weights | None = None  # default: model.backbones, equal shares
    availability: AvailabilitySpec = AvailabilitySpec()
    session_gap_s: Annotated[float, Field(ge=0)] = 3600.0  # mean virtual think time

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


class FleetSpec(Section):
    devices: PositiveInt
    sessions_per_device: PositiveInt = 3
    actors: PositiveInt = 2  # fleet actors; devices are spread by device_id % actors
    max_in_flight: PositiveInt = 512  # concurrent device sessions per actor
    devices_alive: PositiveInt = 4096  # devices (and their replays) held at once per actor
    max_restarts: Annotated[int, Field(ge=0)] = 3
    num_cpus: Annotated[float, Field(ge=0)] = 0.25  # logical CPUs per actor (Serve takes 1)
    pace: Annotated[float, Field(ge=0)] = 0.0  # wall s per virtual s of think time; 0 = no pacing
    network_classes: dict[str, NetworkSpec] = {}  # extra or redefined classes
    profiles: ProfilesSpec = ProfilesSpec()

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


class GeneratorSpec(Section):
    replicas: PositiveInt = 1
    num_cpus: Annotated[float, Field(gt=0)] = 1.0
    dtype: Literal["float32", "float16"] = "float32"  # of the downloaded parameters
    batch_wait_s: Annotated[float, Field(ge=0)] = 0.01  # fleet-side window that fills a request
    max_batch_devices: PositiveInt = 1024  # devices per columnar request
    timeout_s: Annotated[float, Field(gt=0)] = 10.0  # one attempt
    retries: Annotated[int, Field(ge=0)] = 3
    backoff_s: Annotated[float, Field(gt=0)] = 0.1  # doubles per retry
    deadline_s: Annotated[float, Field(gt=0)] = 30.0  # past this, fall back to the global head
    http_port: Annotated[int, Field(ge=1, le=65535)] | None = None  # None: handle only, no proxy
    http_host: str = "127.0.0.1"  # the proxy's bind address; docs/deployment.md before changing


# ---- shifts, output, metrics -----------------------------------------------------------------
class DeviceGroup(Section):
    """Devices a shift hits: those matching every given profile filter, then ``fraction`` of
    them. Shifts with identical blocks hit the same devices (to stack operators)."""

    fraction: Fraction = 1.0
    network: list[str] | None = None
    compute: list[str] | None = None
    upload: list[str] | None = None
    backbone: list[str] | None = None


class ShiftSpec(Section):
    operator: str  # a registered shift operator (pipelines/shifts.py SHIFTS)
    params: dict[str, Any] = {}
    devices: DeviceGroup = DeviceGroup()
    at_session: Annotated[int, Field(ge=0)] = 0  # first shifted session_index
    until_session: PositiveInt | None = None  # first unshifted one again; None: to the end

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


class OutputSpec(Section):
    dir: OutputLocation = "runs/scenario"
    flush_rows: PositiveInt = 2000  # rows per Parquet part file at most
    flush_interval_s: Annotated[float, Field(gt=0)] = 2.0  # and at least this often


class MetricsSpec(Section):
    """Where the Prometheus exporter listens (observability; off by default)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 9108


class MethodSpec(Section):
    """One method of a run: a registered method (duet/method.py), its options,
    its request policy, and the name its rows, summary, report and metrics carry. ``- duet``
    in the YAML is ``{name: duet, method: duet}``; ``{name: duet-history, method: duet,
    condition: history}`` is DUET as the authors' code runs it, one request per scored
    impression; ``{name: duet-every3, method: duet, policy: {type: every_k, k: 3}}`` asks
    the cloud on every third session and keeps its parameters in between. Names that run the
    same method with the same condition and neck share one checkpoint and one generator."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    method: str
    condition: Literal[CONDITIONS] = DEFAULT_CONDITION  # type: ignore[valid-type]
    neck: Literal[NECKS] | None = None  # type: ignore[valid-type]  # default: model.train.neck
    # generated methods only; default: always (session), per_impression (history)
    policy: PolicySpec | None = None  # type: ignore[valid-type]

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
    version: Literal[1]
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    description: str = ""
    seed: int = 0  # profiles, device groups, virtual clocks, shift randomness
    data: DataSpec
    model: ModelSpec
    # modules that register plugins (duet/registry.py), imported before ``methods``
    # is checked; listed before it so that pydantic validates it first
    plugins: list[Annotated[str, Field(pattern=r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")]] = []
    methods: Annotated[list[MethodSpec], Field(min_length=1)]
    fleet: FleetSpec
    generator: GeneratorSpec = GeneratorSpec()
    shifts: list[ShiftSpec] = []
    output: OutputSpec = OutputSpec()
    metrics: MetricsSpec = MetricsSpec()

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
            if policy.type == "always":
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


# ---- loading ---------------------------------------------------------------------------------
def load_scenario(
    path: str | Path, overrides: Sequence[str] = (), plugins: Sequence[str] = ()
) -> Scenario:
    """Read, check and validate a scenario file; ``overrides`` are ``key.sub=value`` strings,
    ``plugins`` modules added to the file's ``plugins:`` (the CLI's ``--plugin``).

    Raises:
        ScenarioError: every problem found, each naming the YAML path and line.
    """
    path = Path(path)
    try:
        with path.open("rb") as fh:  # never more than the limit: it may be /dev/zero or 10 GB
            text = fh.read(MAX_SCENARIO_BYTES + 1)
    except OSError as exc:
        raise ScenarioError([f"{path}: cannot read ({exc.strerror})"]) from None
    if len(text) > MAX_SCENARIO_BYTES:
        line = text.count(b"\n") + 1
        raise ScenarioError(
            [
                f"{path.name}: <top> (line {line}): more than {MAX_SCENARIO_BYTES} "
                "bytes; a scenario is a page of YAML"
            ]
        )
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as exc:  # replacement characters would hide a wrong encoding
        line = text[: exc.start].count(b"\n") + 1
        raise ScenarioError(
            [f"{path.name}: <top> (line {line}): not valid UTF-8 ({exc.reason})"]
        ) from None
    root, data = _parse(path.name, decoded)
    for item in overrides:
        _apply_override(data, item)
    if plugins and isinstance(data.get("plugins", []), list):  # else the schema says why
        data["plugins"] = [*data.get("plugins", []), *plugins]
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(
            [_problem(path.name, root, e, overrides) for e in exc.errors()]
        ) from None


def _parse(name: str, text: str) -> tuple[yaml.Node | None, dict[str, Any]]:
    """Compose the node tree (kept for line numbers) and construct plain data from it."""
    loader = _ScenarioLoader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or exc
        path = _dotted(loader.path) or "<top>"  # the field being read when it failed
        raise ScenarioError([f"{name}: {path}{where}: invalid YAML: {problem}"]) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        line = root.start_mark.line + 1 if root is not None else 1
        raise ScenarioError(
            [f"{name}: <top> (line {line}): expected a mapping, got {type(data).__name__}"]
        )
    return root, data


class _ScenarioLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors, aliases, explicit tags and duplicate keys, and knows
    the path of the node it is composing (``path``), so a YAML-level error can name its field.

    Aliases are how a small file expands into a huge document ("billion laughs") and a
    scenario never needs them, nor tags (``!!python/object`` is refused by SafeLoader anyway,
    here with the field's path); YAML silently keeps the last of duplicate keys, which hides
    a typo'd override.
    """

    def __init__(self, stream: str):
        super().__init__(stream)
        self.path: list[str | int] = []  # left as it was when composing fails

    def compose_node(self, parent, index):  # noqa: ANN001, ANN201
        # PyYAML passes a mapping value's key node, a sequence item's position, or None (a key)
        step = index.value if isinstance(index, yaml.ScalarNode) else index
        if step is not None:
            self.path.append(step)
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases are not accepted in scenarios", event.start_mark
            )
        if getattr(event, "tag", None) is not None:  # only explicit ones: plain nodes have none
            raise yaml.composer.ComposerError(
                None, None, f"tags ({event.tag}) are not accepted in scenarios", event.start_mark
            )
        node = super().compose_node(parent, index)
        if step is not None:
            self.path.pop()
        return node

    def compose_mapping_node(self, anchor):  # noqa: ANN001, ANN201
        node = super().compose_mapping_node(anchor)
        seen: set[Any] = set()
        for key, _ in node.value:
            if key.value in seen:
                self.path.append(key.value)
                raise yaml.composer.ComposerError(
                    None, None, f"duplicate key {key.value!r}", key.start_mark
                )
            seen.add(key.value)
        return node


def _apply_override(data: dict[str, Any], item: str) -> None:
    """``a.b.0.c=value``: set one field; the value is parsed as YAML (``3``, ``true``, ``[a]``)."""
    key, sep, raw = item.partition("=")
    parts = key.split(".")
    if not sep or not all(parts):
        raise ScenarioError([f"override {item!r}: expected KEY.SUB=VALUE"])
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            raise ScenarioError([f"override {item!r}: {'.'.join(parts[: i + 1])} is not a section"])
    last = parts[-1]
    value = yaml.safe_load(raw) if raw else None
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ScenarioError([f"override {item!r}: {'.'.join(parts[:-1])} is not a section"])


def _problem(name: str, root: yaml.Node | None, error: Any, overrides: Sequence[str]) -> str:
    """One error as ``file: a.b[2] (line n): message``, the line of the deepest node present."""
    loc, message = list(error["loc"]), str(error["msg"]).removeprefix("Value error, ")
    blamed = _BLAMED.match(message) if not loc else None
    if blamed:  # a cross-section check names the field it blames (Scenario._cross_checks)
        loc = [int(p) if p.isdigit() else p for p in re.split(r"[.\[\]]", blamed[1]) if p]
        message = message[blamed.end() :]
    parts: list[str | int] = []
    line, node = 1, root
    for depth, part in enumerate(loc):
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            match = next(((k, v) for k, v in node.value if k.value == part), None)
            if match is None and any(
                k.value == "type" and getattr(v, "value", None) == part for k, v in node.value
            ):
                continue  # pydantic names the union member by its tag: not a YAML key
            if match is None:  # not in the file (missing, or set by --set): the section's line
                parts.extend(loc[depth:])
                break
            parts.append(part)
            line, node = match[0].start_mark.line + 1, match[1]
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            parts.append(part)
            node = node.value[part]
            line = node.start_mark.line + 1
        else:  # a scalar reached: the rest of loc names pydantic's union member, not YAML
            if node is None or not isinstance(node, yaml.ScalarNode):
                parts.append(part)
            break
    dotted = ".".join(str(p) for p in parts)
    keys = [o.partition("=")[0] for o in overrides]
    overridden = any(k == dotted or k.startswith(dotted + ".") for k in keys)
    where = "override" if overridden else f"line {line}"
    return f"{name}: {_dotted(parts) or '<top>'} ({where}): {message}"


_BLAMED = re.compile(r"^([A-Za-z_][\w-]*(?:\.[\w/-]+|\[\d+\])*): ")  # "shifts[0].operator: "


def _dotted(parts: Sequence[str | int]) -> str:
    """``["shifts", 0, "operator"]`` -> ``shifts[0].operator``."""
    return "".join(
        f"[{p}]" if isinstance(p, int) else f".{p}" if i else p for i, p in enumerate(parts)
    )

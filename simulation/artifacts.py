"""What a run prepares before any device plays: the prepared dataset, the trained checkpoints
and the request policies fitted on the training sessions, built in a local folder and
published where every node reads them (the same folder, or an object-store URI).

No Ray: `ArtifactDir` is usable on its own, e.g. by a benchmark that needs a prepared dataset
and checkpoints of some methods, and it reuses what an earlier try left (a resumed run does
not prepare or train again):

    OUT/data/                            the prepared dataset (unless the spec names one)
    OUT/models/<backbone>-<name>/        one checkpoint per distinct trained model
    OUT/models/gate-<backbone>-<name>.json   a learned policy's gate
                                         (actors/devices/request_gate.py)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actors.devices.policies import RequestPolicy
from actors.storage.uris import exists, is_uri, join, materialize, publish
from duet.method import METHODS
from simulation.errors import RunError
from simulation.run_dir import scenario_location
from simulation.scenario import DataSpec, MethodSpec, ModelSpec, Scenario
from simulation.scenario_paths import resolve_path


@dataclass(frozen=True)
class PreparedData:
    """A prepared dataset: its local copy on this node and the location every node reads."""

    dataset: str
    path: Path
    location: str


@dataclass(frozen=True)
class Artifacts:
    """Everything a scenario's fleets and generator load.

    Attributes:
        data (PreparedData): the prepared dataset.
        checkpoints (dict): backbone -> method name -> checkpoint location (a method scoring
            with another's model maps to that model's location).
        policies (dict): ``"<backbone>/<name>"`` -> a generated method's fitted policy.
    """

    data: PreparedData
    checkpoints: dict[str, dict[str, str]]
    policies: dict[str, RequestPolicy]


def build_artifacts(scenario: Scenario, where: ArtifactDir) -> Artifacts:
    """The scenario's data, checkpoints and fitted policies, in that order (each needs the
    previous)."""
    data = where.prepare_data(scenario.data)
    checkpoints = where.checkpoints(
        scenario.model, scenario.methods, data, owner=scenario.model_owner
    )
    policies = where.policies(scenario.policies, checkpoints, data, seed=scenario.seed)
    return Artifacts(data, checkpoints, policies)


class ArtifactDir:
    """Builds in ``out`` (a local folder) and publishes to ``output`` (default: ``out``).

    Args:
        out (Path): the local folder: ``data/`` and ``models/`` go there.
        output (str | None): where every node reads them: ``out`` itself or a URI.
        progress (bool): show training progress bars.
    """

    def __init__(self, out: Path, output: str | None = None, *, progress: bool = True):
        self.out, self.output, self.progress = out, output or str(out), progress
        self.remote = is_uri(self.output)

    def prepare_data(self, spec: DataSpec) -> PreparedData:
        """``spec.prepared`` checked against the dataset, or ``OUT/data``: reused when it was
        prepared with the same protocol, else prepared now.

        Raises:
            RunError: ``spec.prepared`` holds another dataset.
        """
        from pipelines.prepare import prepare
        from pipelines.tensors import verify_prepared

        if spec.prepared is not None:
            location = scenario_location(spec.prepared)
            path = materialize(location)  # a URI: copied to this node's cache
            meta = verify_prepared(path)
            if meta["dataset"] != spec.dataset:
                raise RunError(
                    f"data.prepared {spec.prepared} holds {meta['dataset']}, not {spec.dataset}"
                )
            return PreparedData(spec.dataset, path, location)
        path = self.out / "data"
        location = join(self.output, "data")
        if self.remote and exists(join(location, "meta.json")):
            path = materialize(location)  # prepared by an earlier try
        options, knobs = spec.session_options, spec.knobs
        if (path / "meta.json").is_file() and _same_data(verify_prepared(path), spec):
            return PreparedData(spec.dataset, path, location)
        print(f"preparing {spec.dataset} -> {path}", flush=True)
        data_dir = resolve_path(spec.data_dir) if spec.data_dir else None
        prepare(
            spec.dataset,
            path,
            data_dir=data_dir,
            options=options,
            seed=spec.seed,
            image=spec.image,
            knobs=knobs,
        )
        publish(path, location)  # where every node reads it
        return PreparedData(spec.dataset, path, location)

    def checkpoints(
        self,
        model: ModelSpec,
        methods: Sequence[MethodSpec],
        data: PreparedData,
        owner: Mapping[str, str] | None = None,
    ) -> dict[str, dict[str, str]]:
        """backbone -> method name -> checkpoint location. One checkpoint per distinct trained
        model: ``owner`` maps a name to the name whose checkpoint it scores with
        (`Scenario.model_owner`: ``finetune`` scores with base's, a policy variant of
        ``duet`` with duet's); default: each its own."""
        owner = owner if owner is not None else {m.name: m.name for m in methods}
        by_name = {m.name: m for m in methods}
        out: dict[str, dict[str, str]] = {}
        for backbone in model.backbones:
            paths = {
                name: self._checkpoint(model, backbone, by_name[name], data)
                for name in dict.fromkeys(owner.values())
            }
            out[backbone] = {name: paths[owner[name]] for name in owner}
        return out

    def _checkpoint(
        self, model: ModelSpec, backbone: str, method: MethodSpec, data: PreparedData
    ) -> str:
        """The given checkpoint, else ``OUT/models/<backbone>-<name>`` (trained unless an
        earlier try did), loaded once here to check it."""
        trained = METHODS[method.method].trained_as()
        given = model.checkpoints.get(f"{backbone}/{method.name}")
        if given is not None:
            location = scenario_location(given)
        else:
            location = self._trained(model, backbone, method, trained, data)
        _check_checkpoint(materialize(location), backbone, trained, method.condition)
        return location

    def _trained(
        self,
        model: ModelSpec,
        backbone: str,
        method: MethodSpec,
        trained: str,
        data: PreparedData,
    ) -> str:
        from simulation.train_recipe import TrainOptions, TrainRecipe

        path = self.out / "models" / f"{backbone}-{method.name}"
        published = join(self.output, "models", f"{backbone}-{method.name}")
        if self.remote and exists(join(published, "metrics.json")):
            path = materialize(published)  # trained by an earlier try of this run
        if not (path / "metrics.json").is_file():
            print(f"training {backbone}/{method.name} -> {path}", flush=True)
            options = {k: v for k, v in model.train.model_dump().items() if v is not None}
            if method.neck is not None:
                options["neck"] = method.neck
            TrainRecipe(
                TrainOptions(
                    data.dataset,
                    backbone,
                    trained,
                    prepared=data.path,
                    progress=self.progress,
                    condition=method.condition,
                    **options,
                ),
                path,
            ).run()
        publish(path, published)  # where every node reads it
        return published

    def policies(
        self,
        policies: Mapping[str, RequestPolicy],
        checkpoints: Mapping[str, Mapping[str, str]],
        data: PreparedData,
        seed: int,
    ) -> dict[str, RequestPolicy]:
        """``"<backbone>/<name>"`` -> each generated method's request policy, fitted in the
        cloud on the training sessions before any device plays (`RequestPolicy.fit`: the
        learned policy's gate, cached in ``OUT/models``)."""
        from actors.devices.policies import PolicyTraining

        fitted = {}
        for name, policy in policies.items():
            for backbone, ckpts in checkpoints.items():
                cache = self.out / "models" / f"gate-{backbone}-{name}.json"
                training = PolicyTraining(
                    data.path, ckpts["base"], ckpts[name], cache, seed, self.progress
                )
                fitted[f"{backbone}/{name}"] = policy.fit(training)
        return fitted

    def gate_reports(self) -> dict[str, Any]:
        """``<backbone>-<name>`` -> a fitted gate's file (its size, cost and fit), for the
        summary."""
        return {
            path.stem.removeprefix("gate-"): json.loads(path.read_text())
            for path in sorted((self.out / "models").glob("gate-*.json"))
        }


def _same_data(meta: dict[str, Any], spec: DataSpec) -> bool:
    """A prepared dir in OUT can be reused if it was prepared with the same protocol."""
    knobs = spec.knobs
    same = meta.get("options") == dataclasses.asdict(spec.session_options)
    same &= meta.get("seed") == spec.seed
    if meta.get("kind") == "images" and knobs is None:
        image = spec.image
        same &= (meta.get("height"), meta.get("channels")) == (
            image.image_size,
            image.image_channels,
        )
    return same and meta.get("synthetic") == (dataclasses.asdict(knobs) if knobs else None)


def _check_checkpoint(path: Path, backbone: str, method: str, condition: str) -> None:
    """Load it here, before Ray starts: a corrupt file fails the run naming the file, instead
    of failing every fleet actor and the generator replica that would load it."""
    from duet.checkpoint import CheckpointError, load_checkpoint

    try:
        cfg = load_checkpoint(path)[0].cfg
    except CheckpointError as exc:
        raise RunError(f"checkpoint {exc}") from exc
    if (cfg.backbone, cfg.method) != (backbone, method):
        raise RunError(f"checkpoint {path} is {cfg.backbone}/{cfg.method}, not {backbone}/{method}")
    if cfg.ppg is not None and cfg.ppg.conditioned and cfg.ppg.condition != condition:
        raise RunError(
            f"checkpoint {path} is conditioned on {cfg.ppg.condition!r}, the method "
            f"on {condition!r}"
        )

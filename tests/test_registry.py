"""Every extension point is one registry of the same shape (duet/registry.py): methods,
backbones, datasets, shift operators, request policies. Every place that lists or checks a
name takes it from its registry (the CLI's choices, the scenario schema, the model); the
other named choices (necks, conditioning, schedules, splits) are defined once in
duet/names.py and pipelines/names.py."""

from __future__ import annotations

import argparse
import typing

import pytest

from actors.devices.policies import POLICIES
from duet import names as model_names
from duet.backbone import BACKBONES
from duet.method import METHODS
from duet.registry import Registry, RegistryError
from pipelines import names as data_names
from pipelines.datasets import DATASETS
from pipelines.shifts import SHIFTS
from simulation.cli import build_parser
from simulation.scenario import DataSpec, MethodSpec, ModelSpec, TrainSpec

REGISTRIES = {
    "method": METHODS,
    "backbone": BACKBONES,
    "dataset": DATASETS,
    "shift operator": SHIFTS,
    "request policy": POLICIES,
}


def _choices(*path: str) -> dict[str, tuple]:
    """dest -> choices of every option of the sub-command at ``path``."""
    parser = build_parser()
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return {
        a.dest: tuple(a.choices)
        for a in parser._actions
        if a.choices is not None and not isinstance(a, argparse._SubParsersAction)
    }


def test_train_choices_come_from_the_registries():
    choices = _choices("train")
    assert choices["dataset"] == DATASETS.names()
    assert choices["backbone"] == BACKBONES.names()
    assert choices["method"] == METHODS.names()
    assert choices["neck"] == model_names.NECKS
    assert choices["condition"] == model_names.CONDITIONS
    assert choices["select"] == model_names.SELECTIONS
    assert choices["lr_schedule"] == model_names.LR_SCHEDULES


def test_data_choices_come_from_the_registry():
    choices = _choices("data", "prepare")
    assert choices["dataset"] == DATASETS.names()
    assert choices["protocol"] == tuple(data_names.PROTOCOLS)
    assert choices["image_channels"] == data_names.IMAGE_CHANNELS
    assert _choices("data", "export-duet")["split"] == data_names.SPLITS


def _literal(model, field: str) -> tuple:
    annotation = model.model_fields[field].annotation
    while typing.get_origin(annotation) is not typing.Literal:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return typing.get_args(annotation)


def test_scenario_schema_takes_its_names_from_the_registries():
    assert _literal(MethodSpec, "condition") == model_names.CONDITIONS
    assert _literal(TrainSpec, "neck") == model_names.NECKS
    base = {"dataset": "synthetic-clicks"}
    for name in DATASETS:
        assert DataSpec(dataset=name).dataset == name
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        DataSpec(**base | {"dataset": "imagenet"})
    for name in BACKBONES:
        assert ModelSpec(backbones=[name]).backbones == [name]
    with pytest.raises(ValueError, match="unknown backbone 'resnet'"):
        ModelSpec(backbones=["resnet"])


def test_the_scenario_accepts_exactly_the_registered_fleet_methods():
    """methods[].method is checked against duet/method.py's registry, whose built-ins score
    with checkpoints `duet-sim train` trains; finetune-user is refused (offline only)."""
    fleet = [name for name, cls in METHODS.items() if not cls.needs_history]
    for name in fleet:
        assert MethodSpec(name=name, method=name).method == name
    with pytest.raises(ValueError, match="'finetune-user' adapts on each user's labelled"):
        MethodSpec(name="x", method="finetune-user")
    assert {METHODS[n].trained_as() for n in METHODS} <= set(METHODS)
    built_in = {n for n, cls in METHODS.items() if cls.__module__ == "duet.methods"}
    assert built_in == {"base", "finetune", "finetune-user", "hypernet", "duet-no-swa", "duet"}
    assert set(fleet) >= built_in - {"finetune-user"}


@pytest.mark.parametrize("kind", ["clicks", "images"])
def test_every_backbone_of_a_kind_builds_a_model_on_a_dataset_of_that_kind(kind):
    from duet.backbone import ModelOptions
    from duet.model import DeviceModel

    meta = {"clicks": {"num_items": 20, "history_length": 5}, "images": {}}[kind]
    meta |= {"num_classes": 3, "channels": 1}
    named = [b for b, cls in BACKBONES.items() if cls.kind == kind]
    assert named and any(cls.kind == kind for _, cls in DATASETS.items())
    for backbone in named:
        options = ModelOptions("duet", 2, 1.0, "mean", "session", ())
        model = DeviceModel(BACKBONES[backbone].model_config(options, meta))
        assert model.cfg.backbone == backbone and model.cfg.kind == kind


@pytest.mark.parametrize("kind", list(REGISTRIES))
def test_every_registry_refuses_a_taken_name_and_a_class_missing_a_method(kind):
    registry: Registry = REGISTRIES[kind]
    name, taken = next(iter(registry.items()))
    impostor = type(taken.__name__, (taken,), {"__module__": "elsewhere"})
    with pytest.raises(RegistryError, match=f"{kind} {name!r} is already registered by"):
        registry.register(name)(impostor)
    abstract = sorted(getattr(registry.base, "__abstractmethods__", ()))
    if abstract:  # a direct subclass that implements nothing is refused, naming the methods
        bare = type("Bare", (registry.base,), {"__module__": "elsewhere"})
        if kind == "request policy":
            bare = type("Bare", (registry.base,), {"__annotations__": {}, "__module__": "x"})
        with pytest.raises(RegistryError, match="does not implement"):
            registry.register("bare")(bare)
    assert "bare" not in registry
    with pytest.raises(RegistryError, match=f"unknown {kind} 'nope'; registered: "):
        registry["nope"]

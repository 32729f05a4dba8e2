"""Every dataset, backbone, method, neck and conditioning name is defined once, in
duet/names.py (models) and pipelines/names.py (data), and every place that lists or checks
one takes it from there: the CLI's choices, the scenario schema, the model configs."""

from __future__ import annotations

import argparse
import typing

import pytest

from duet import names as model_names
from duet.method import METHODS
from pipelines import names as data_names
from simulation.cli import build_parser
from simulation.scenario import DataSpec, MethodSpec, ModelSpec, TrainSpec


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
    assert choices["dataset"] == data_names.DATASET_NAMES
    assert choices["backbone"] == model_names.BACKBONE_NAMES
    assert choices["method"] == METHODS.names()
    assert choices["neck"] == model_names.NECKS
    assert choices["condition"] == model_names.CONDITIONS
    assert choices["select"] == model_names.SELECTIONS
    assert choices["lr_schedule"] == model_names.LR_SCHEDULES


def test_data_choices_come_from_the_registry():
    choices = _choices("data", "prepare")
    assert choices["dataset"] == data_names.DATASET_NAMES
    assert choices["protocol"] == tuple(data_names.PROTOCOLS)
    assert choices["image_channels"] == data_names.IMAGE_CHANNELS
    assert _choices("data", "export-duet")["split"] == data_names.SPLITS


def _literal(model, field: str) -> tuple:
    annotation = model.model_fields[field].annotation
    while typing.get_origin(annotation) is not typing.Literal:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return typing.get_args(annotation)


def test_scenario_schema_takes_its_names_from_the_registries():
    assert _literal(DataSpec, "dataset") == data_names.DATASET_NAMES
    assert _literal(MethodSpec, "condition") == model_names.CONDITIONS
    assert _literal(TrainSpec, "neck") == model_names.NECKS
    assert _literal(ModelSpec, "backbones") == model_names.BACKBONE_NAMES


def test_the_scenario_accepts_exactly_the_registered_fleet_methods():
    """methods[].method is checked against duet/method.py's registry, whose built-ins score
    with checkpoints `duet-sim train` trains; finetune-user is refused (offline only)."""
    from duet.method import METHODS

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
def test_every_backbone_of_a_kind_is_built_by_the_model(kind):
    from duet.model import ModelConfig  # noqa: F401  (imports duet/names through the model)
    from duet.sequence import SEQUENCE_BACKBONES

    named = {b for b, k in model_names.BACKBONES.items() if k == kind}
    built = (
        set(SEQUENCE_BACKBONES)
        if kind == "clicks"
        else {"mobilenet_v3_large", "mobilenet_v3_small"}
    )
    assert named == built
    assert {d for d, spec in data_names.DATASETS.items() if spec.kind == kind}

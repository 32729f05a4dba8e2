"""Each setting is declared once: the scenario reference in docs/scenarios.md is generated
from the schema, whose layer sections take their fields from the layers' configs, as the
CLI's flags do. Changing a default in a config changes all three, and this test fails until
the page is regenerated (`python -m simulation.schema_doc docs/scenarios.md`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.devices.config import FleetPlay, RetryPolicy
from actors.storage.sink import FlushPolicy
from simulation.scenario import FleetSpec, GeneratorSpec, OutputSpec, TrainSpec
from simulation.schema_doc import main, render
from simulation.train_recipe import TrainOptions

DOC = Path(__file__).resolve().parents[2] / "docs" / "scenarios.md"


def test_the_committed_reference_is_the_generated_one():
    assert render() in DOC.read_text()
    assert main([str(DOC), "--check"]) == 0


def test_sections_take_their_fields_from_the_layers_configs():
    play, retry, flush = FleetPlay(), RetryPolicy(), FlushPolicy()
    fleet = FleetSpec(devices=1)
    assert (fleet.max_in_flight, fleet.devices_alive) == (play.max_in_flight, play.devices_alive)
    generator = GeneratorSpec()
    assert (generator.timeout_s, generator.deadline_s) == (retry.timeout_s, retry.deadline_s)
    assert OutputSpec().flush_rows == flush.flush_rows
    assert fleet.config(FleetPlay) == play and generator.config(RetryPolicy) == retry
    lr = TrainOptions.__pydantic_fields__["lr"]
    assert TrainSpec.model_fields["lr"].default == lr.default
    assert TrainSpec.model_fields["lr"].description == lr.description
    assert f"| `max_in_flight` | `{play.max_in_flight}` |" in render()


def test_the_train_flags_show_the_options_defaults_and_descriptions(capsys):
    from simulation.cli import main as cli

    with pytest.raises(SystemExit):
        cli(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    lr = TrainOptions.__pydantic_fields__["lr"]
    assert f"{lr.description} (default: {lr.default})" in text

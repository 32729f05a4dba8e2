"""The training recipe: model selection on the validation split, the test split read once
and only after selection, validation metrics in metrics.json, and the image input options
(`data prepare --image-size/--image-channels`, `train --weight-decay`) end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import pipelines.tensors
from simulation.cli import main
from simulation.train_recipe import TrainOptions, TrainRecipe

from ..conftest import cli_exit


def test_the_test_split_is_read_once_and_only_after_the_epoch_is_selected(
    prepared, tmp_path, monkeypatch
):
    """Every split the recipe reads, in order: train and val for training and selection;
    test once, after the selected weights are in place."""
    events: list[str] = []
    load = pipelines.tensors.load_samples

    def recording_load(data, split, users=None):
        events.append(f"load {split}")
        return load(data, split, users)

    import duet.train

    real_validate = duet.train.validate

    def recording_validate(*args, **kwargs):
        events.append("validate")
        return real_validate(*args, **kwargs)

    monkeypatch.setattr(pipelines.tensors, "load_samples", recording_load)
    monkeypatch.setattr(duet.train, "validate", recording_validate)
    options = TrainOptions(
        "synthetic-clicks", "gru4rec", "duet", prepared=prepared, epochs=3, progress=False
    )
    metrics = TrainRecipe(options, tmp_path / "run").run()
    assert events == ["load train", "load val", "validate", "validate", "validate", "load test"]
    assert metrics["selected_epoch"] == 1 + metrics["val_curve"].index(max(metrics["val_curve"]))
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["val_auc"] == max(saved["val_curve"]) and 0 <= saved["auc"] <= 1
    assert {"val_session_auc", "val_ndcg@10", "num_val"} <= saved.keys()
    assert saved["options"]["weight_decay"] == 0.0  # the click default, resolved


def test_a_sample_of_users_is_what_is_trained_selected_and_tested(prepared, tmp_path):
    """``--users N`` (a scenario's ``model.train.users``): a population too large to train on
    trains on its first N users, and every split the recipe reads is theirs."""
    import polars as pl

    options = TrainOptions(
        "synthetic-clicks", "din", "base", prepared=prepared, epochs=1, users=3, progress=False
    )
    metrics = TrainRecipe(options, tmp_path / "run").run()
    train = pl.read_parquet(prepared / "train.parquet").filter(pl.col("user") < 3)
    assert metrics["num_train"] == train.height * (1 + train["negatives"].dtype.size)
    val = pl.read_parquet(prepared / "val.parquet").filter(pl.col("user") < 3)
    assert metrics["num_val"] == val.height * (1 + val["negatives"].dtype.size)
    assert metrics["options"]["users"] == 3


def test_test_before_train_is_refused(prepared, tmp_path):
    recipe = TrainRecipe(
        TrainOptions("synthetic-clicks", "din", "base", prepared=prepared), tmp_path
    )
    recipe.setup()
    with pytest.raises(RuntimeError, match="before train"):
        recipe.test()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("backbone", "mobilenet_v3_small", "reads images, not clicks"),
        ("epochs", 0, r"epochs\n  Input should be greater than or equal to 1"),
        ("neck", "lstm", r"neck\n  Input should be 'mean', 'gru' or 'gru-mean'"),
        ("select", "first", r"select\n  Input should be 'best' or 'last'"),
        ("users", 0, r"users\n  Input should be greater than or equal to 1"),
    ],
)
def test_options_are_checked_by_name_before_any_work(field, value, message):
    kwargs = {"dataset": "synthetic-clicks", "backbone": "din", "method": "base", field: value}
    with pytest.raises(ValueError, match=message):
        TrainOptions(**kwargs)


@pytest.mark.parametrize("value", ["-1e-4", "nan", "inf", "x"])
def test_bad_weight_decay_is_refused_by_the_cli(tmp_path, capsys, value):
    out = tmp_path / "run"
    argv = [
        "train",
        "--dataset",
        "synthetic-clicks",
        "--backbone",
        "din",
        "--method",
        "base",
        "--out",
        str(out),
        f"--weight-decay={value}",
    ]
    assert cli_exit(argv) == 2
    err = capsys.readouterr().err
    assert "--weight-decay" in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


@pytest.mark.parametrize("value", ["0", "-48", "31", "100000", "48.5"])
def test_bad_image_size_is_refused_before_any_work(tmp_path, capsys, value):
    out = tmp_path / "prepared"
    argv = [
        "data",
        "prepare",
        "--dataset",
        "ckplus",
        "--data-dir",
        str(tmp_path),
        "--out",
        str(out),
        "--image-size",
        value,
    ]
    assert cli_exit(argv) == 2
    assert "--image-size" in capsys.readouterr().err
    assert not out.exists()


def _ckplus48(root, subjects: int = 4, sequences: int = 3, size: int = 48) -> None:
    """CK+48's layout: emotion folders of S<subject>_<sequence>_<frame>.png apex frames."""
    rng = np.random.default_rng(0)
    emotions = ("anger", "happy", "surprise")
    for s in range(subjects):
        for q in range(sequences):
            folder = root / emotions[(s + q) % len(emotions)]
            folder.mkdir(parents=True, exist_ok=True)
            for f in range(3):
                pixels = rng.integers(0, 256, (size, size), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"S{s + 10:03d}_{q + 1:03d}_{f + 1:08d}.png")


def test_image_input_options_reach_the_model(tmp_path, capsys):
    """`data prepare --image-size 64 --image-channels 3` writes 3 identical 64x64 planes per
    frame, with one validation video per subject; `train --weight-decay` trains on them
    with a 3-channel first convolution and reports validation metrics."""
    _ckplus48(tmp_path / "ck-plus-48")
    data = tmp_path / "prepared"
    assert (
        main(
            [
                "data",
                "prepare",
                "--dataset",
                "ckplus",
                "--data-dir",
                str(tmp_path),
                "--out",
                str(data),
                "--image-size",
                "64",
                "--image-channels",
                "3",
            ]
        )
        == 0
    )
    meta = json.loads((data / "meta.json").read_text())
    assert (meta["height"], meta["width"], meta["channels"]) == (64, 64, 3)
    assert meta["counts"]["val_sessions"] == meta["counts"]["test_sessions"] == 4
    frames = pipelines.tensors.load_samples(data, "val").pixels
    assert frames.shape[1:] == (3, 64, 64) and (frames == frames[:, :1]).all()  # gray, repeated
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--dataset",
                "ckplus",
                "--backbone",
                "mobilenet_v3_small",
                "--method",
                "duet",
                "--prepared",
                str(data),
                "--out",
                str(run),
                "--epochs",
                "2",
                "--weight-decay",
                "1e-3",
                "--no-progress",
            ]
        )
        == 0
    )
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["options"]["weight_decay"] == 1e-3 and metrics["options"]["batch_size"] == 32
    assert len(metrics["val_curve"]) == 2 and 0 <= metrics["val_accuracy"] <= 1
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["mobilenet"]["in_channels"] == 3


def test_an_adapted_method_reuses_the_base_run_bit_for_bit(prepared, tmp_path):
    """finetune with ``base_run`` adapts the base run's weights instead of retraining the
    same model, and scores exactly what training it again would; a base run trained with
    other options is refused."""
    common = {"prepared": prepared, "epochs": 1, "progress": False, "seed": 3, "full_ranking": True}
    base = TrainRecipe(TrainOptions("synthetic-clicks", "din", "base", **common), tmp_path / "b")
    base.run()
    fresh = TrainRecipe(
        TrainOptions("synthetic-clicks", "din", "finetune", **common), tmp_path / "f"
    ).run()
    reused = TrainRecipe(
        TrainOptions("synthetic-clicks", "din", "finetune", base_run=tmp_path / "b", **common),
        tmp_path / "r",
    ).run()
    for key in ("auc", "val_auc", "full_hr@10", "selected_epoch"):
        assert reused[key] == fresh[key], key
    other = dict(common, seed=4)
    with pytest.raises(ValueError, match="not trained with these options"):
        TrainRecipe(
            TrainOptions("synthetic-clicks", "din", "finetune", base_run=tmp_path / "b", **other),
            tmp_path / "x",
        ).run()
    with pytest.raises(ValueError, match="only methods that adapt a trained model reuse one"):
        TrainOptions("synthetic-clicks", "din", "duet", base_run=tmp_path / "b")


def test_a_run_that_predates_an_option_matches_it_at_its_default(prepared):
    """Regression: `stream` was added after the Table 1 base runs, and every adapted cell of
    seeds 1-4 refused to reuse them; an option a stored run lacks is its default."""
    options = TrainOptions("synthetic-clicks", "din", "finetune-user", prepared=prepared).resolved()
    stored = {k: v for k, v in options.to_json().items() if k != "stream"} | {"method": "base"}
    assert options.same_training(stored)
    assert not options.same_training(stored | {"stream": True})
    assert not options.same_training(stored | {"seed": 7})

"""A small DUET training run pinned to its metrics from before the training-speed work
(grouped scoring of generated parameters, one history per positive): the optimisations
change no result beyond float rounding. Values measured with the code at commit f71a518
(`git stash` of the change, same machine); a change that moves them needs a reason."""

from __future__ import annotations

import dataclasses

import pytest

from pipelines.prepare import default_options, prepare
from pipelines.synthetic import SyntheticClicksConfig
from simulation.train_recipe import TrainOptions, TrainRecipe

PINNED = {  # before the change
    "sasrec": {"val_auc": 0.7592271111111111, "auc": 0.7436330138888889, "ndcg@10": 0.2949705363},
    "din": {"val_auc": 0.7513507777777778, "auc": 0.73374825, "ndcg@10": 0.2938288156},
}


@pytest.mark.parametrize("backbone", ["sasrec", "din"])
def test_duet_training_metrics_are_unchanged(tmp_path, backbone):
    options = dataclasses.replace(default_options("synthetic-clicks"), test_sessions=2)
    config = SyntheticClicksConfig(n_users=30, n_items=300, n_clusters=6, sessions_per_user=6)
    prepare("synthetic-clicks", tmp_path / "data", options=options, knobs=config)
    recipe = TrainRecipe(
        TrainOptions(
            "synthetic-clicks",
            backbone,
            "duet",
            prepared=tmp_path / "data",
            epochs=2,
            batch_size=64,
            progress=False,
        ),
        tmp_path / "run",
    )
    metrics = recipe.run()
    for key, value in PINNED[backbone].items():
        assert metrics[key] == pytest.approx(value, abs=1e-5), key

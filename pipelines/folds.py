"""Subject-independent k-fold cross-validation for image datasets (CK+).

Facial-expression work on CK+ reports k-fold cross-validation (usually 10 folds) split by
subject, so that every labelled video is tested once and no face is seen in both training
and test. The folds are scikit-learn's ``StratifiedGroupKFold`` over videos, grouped by
subject and stratified by the video's emotion as far as whole subjects allow, shuffled by
the prepare seed: the same seed gives the same folds.

Inside the training folds, validation (epoch selection) is the next fold's subjects,
``(fold + 1) % folds``: also by subject, also stratified, and never the test fold.
"""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
from sklearn.model_selection import StratifiedGroupKFold


def subject_folds(videos: pl.DataFrame, folds: int, seed: int) -> dict[str, int]:
    """Assign each subject to one of ``folds`` folds.

    Args:
        videos (pl.DataFrame): one row per video with ``subject`` and ``label``.
        folds (int): the number of folds (>= 2, at most the number of subjects).
        seed (int): shuffles subjects before the stratified assignment.

    Returns:
        dict[str, int]: subject -> fold in ``[0, folds)``.

    Raises:
        ValueError: fewer subjects than folds.
    """
    videos = videos.sort("subject", "sequence") if "sequence" in videos.columns else videos
    subjects = videos["subject"].to_numpy()
    if len(np.unique(subjects)) < folds:
        raise ValueError(
            f"folds: {folds} folds need at least {folds} subjects, got {len(np.unique(subjects))}"
        )
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    owner: dict[str, int] = {}
    labels = videos["label"].to_numpy()
    with warnings.catch_warnings():  # a class rarer than the folds: stratified as far as it goes
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        for fold, (_, test) in enumerate(splitter.split(subjects, labels, groups=subjects)):
            owner |= {str(s): fold for s in np.unique(subjects[test])}
    return owner


def fold_split(subject: pl.Expr, owner: dict[str, int], folds: int, fold: int) -> pl.Expr:
    """The ``split`` column of fold ``fold``: its subjects test, the next fold's subjects
    validation, every other subject train."""
    of = subject.replace_strict(owner, return_dtype=pl.Int32)
    return (
        pl.when(of == fold)
        .then(pl.lit("test"))
        .when(of == (fold + 1) % folds)
        .then(pl.lit("val"))
        .otherwise(pl.lit("train"))
    )

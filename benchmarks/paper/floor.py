"""Table 2's linear floor: ridge regression on raw pixels, the accuracy a CNN must beat on
the same split. λ is chosen on the validation split from :data:`RIDGE_LAMBDAS` (in units of
the mean squared pixel norm); the test split is scored once, with that λ.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.paper.cells import data_folder, read_json, ridge_path, write_json
from benchmarks.paper.grids import prepared

RIDGE_LAMBDAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


def ridge_floor(data: Path) -> dict[str, Any]:
    """Ridge regression from raw pixels to one-hot classes, fitted on train, λ chosen on val.

    Kernel form, ``α = (X Xᵀ + λ' I)⁻¹ Y``: with a few hundred frames of up to 150,528
    pixels, the (n, n) Gram matrix is the small side. Features and targets are centered on
    the training means, so no bias is penalized.
    """
    import numpy as np

    from pipelines.tensors import load_samples

    def arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
        s = load_samples(data, split)
        return s.pixels.flatten(1).double().numpy(), s.label.numpy()

    (x, y), (xv, yv) = arrays("train"), arrays("val")
    classes = int(max(y.max(), yv.max())) + 1
    mean, onehot = x.mean(0), np.eye(classes)[y]
    x, xv = x - mean, xv - mean
    gram, cross = x @ x.T, xv @ x.T  # (n, n), (n_val, n)
    scale = np.trace(gram) / len(x)
    val_acc = {}
    for lam in RIDGE_LAMBDAS:
        alpha = np.linalg.solve(gram + lam * scale * np.eye(len(x)), onehot - onehot.mean(0))
        val_acc[lam] = float(((cross @ alpha).argmax(1) == yv).mean())
    best = max(RIDGE_LAMBDAS, key=lambda lam: (val_acc[lam], lam))  # ties: more shrinkage
    xt, yt = arrays("test")
    alpha = np.linalg.solve(gram + best * scale * np.eye(len(x)), onehot - onehot.mean(0))
    test_acc = float((((xt - mean) @ x.T @ alpha).argmax(1) == yt).mean())
    return {
        "method": "linear-ridge",
        "lambda": best,
        "val_accuracy_by_lambda": val_acc,
        "val_accuracy": val_acc[best],
        "accuracy": test_acc,
        "num_train": len(x),
        "features": x.shape[1],
    }


def linear_floor(
    protocols: Sequence[str], data_dir: Path | None, results: Path, runs: Path
) -> None:
    """The floor of each CK+ input, cached beside that input's Table 2 cells."""
    for protocol in protocols:
        data = prepared("ckplus", data_dir, runs, protocol)
        result = ridge_floor(data) | {"protocol": protocol}
        write_json(ridge_path(results, "table2", data_folder("ckplus", protocol)), result)
        print(
            f"linear floor {protocol}: λ {result['lambda']:g} (val {result['val_accuracy']:.4f}),"
            f" test accuracy {result['accuracy']:.4f}"
        )


def load_floor(results: Path, protocol: str) -> dict[str, Any] | None:
    """The cached floor of one CK+ input, or None before ``linear-floor`` has run."""
    return read_json(ridge_path(results, "table2", data_folder("ckplus", protocol)))

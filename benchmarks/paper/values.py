"""The paper's published numbers (Lv et al., WWW 2023, arXiv 2209.05227, Tables 1-4), for
the "paper" columns of docs/results.md.

Absolute values depend on each side's negatives and split; the comparable quantity is the
relative gain over base (:func:`rel_gain`), which the tables put beside ours.
"""

from __future__ import annotations

# Table 1, ML-100K column: (backbone, variant) -> (AUC, std), in our variant names: the
# paper's "fine-tuning" row is the per-user fine-tuning of its public code, our
# finetune-user; its DUET rows sit beside both our conditioning modes (see paper_row).
TABLE1_ML100K: dict[tuple[str, str], tuple[float, float]] = {
    ("din", "base"): (0.8348, 0.0045),
    ("din", "finetune-user"): (0.8429, 0.0045),
    ("din", "duet-no-swa"): (0.8560, 0.0030),
    ("din", "duet"): (0.8581, 0.0055),
    ("sasrec", "base"): (0.8721, 0.0026),
    ("sasrec", "finetune-user"): (0.8719, 0.0027),
    ("sasrec", "duet-no-swa"): (0.8721, 0.0027),
    ("sasrec", "duet"): (0.8723, 0.0009),
    ("gru4rec", "base"): (0.8723, 0.0017),
    ("gru4rec", "finetune-user"): (0.8711, 0.0019),
    ("gru4rec", "duet-no-swa"): (0.8751, 0.0055),
    ("gru4rec", "duet"): (0.8755, 0.0017),
}
# Table 1's device model size on ML-100K: backbone -> (params, FLOPs); the same for every method
TABLE1_ML100K_COST = {
    "din": (271_830, 600_000),
    "sasrec": (263_630, 770_000),
    "gru4rec": (261_620, 720_000),
}
# Table 1's time delay on ML-100K (ms, Tesla V100): a lower bound per method
TABLE1_DELAY_MS = {"base": 0.0, "finetune-user": 60_000.0, "duet-no-swa": 0.15, "duet": 0.15}

# Table 2 / Table 4 (CK+, accuracy in %): (backbone, variant) -> (accuracy, std); our
# variant names (duet-no-swa is N_p = 1, duet-npK is DUET with K generators, duet-np5 the
# Table 2 DUET row)
TABLE2: dict[tuple[str, str], tuple[float, float]] = {
    ("mobilenet_v3_large", "base"): (76.97, 2.76),
    ("mobilenet_v3_large", "duet-no-swa"): (79.49, 2.84),
    ("mobilenet_v3_large", "duet-np2"): (80.40, 4.26),
    ("mobilenet_v3_large", "duet-np3"): (81.88, 2.81),
    ("mobilenet_v3_large", "duet-np5"): (82.45, 2.67),
    ("mobilenet_v3_small", "base"): (67.88, 2.15),
    ("mobilenet_v3_small", "duet-no-swa"): (71.82, 2.91),
    ("mobilenet_v3_small", "duet-np2"): (73.11, 3.80),
    ("mobilenet_v3_small", "duet-np3"): (73.74, 2.19),
    ("mobilenet_v3_small", "duet-np5"): (75.15, 1.41),
}
TABLE2_COST = {
    "mobilenet_v3_large": (2_690_000, 270_000_000),
    "mobilenet_v3_small": (1_240_000, 60_000_000),
}
TABLE2_DELAY_MS = {"mobilenet_v3_large": 51.0, "mobilenet_v3_small": 31.0}  # DUET, >=

# Table 3, row by row: bytes up (raw real-time data, or the uploaded embedding) and down
# (the generated parameters), and the transfer delays it prints per network class, in
# seconds (bytes / bandwidth: the paper adds no round-trip time). None: not printed.
KB, MB = 1024, 1024 * 1024
TABLE3: dict[str, dict[str, object]] = {
    "mobilenet_v3_large": {
        "up_raw": 0.14 * MB,
        "up_embedding": 0.25 * KB,
        "down": 5.31 * MB,
        "delays": {
            "4g-5": (0.03, 0.05e-3, 1.06),
            "4g-15": (0.01, 0.017e-3, 0.35),
            "5g-50": (0.003, 0.005e-3, 0.10),
            "5g-100": (0.001, 0.003e-3, 0.05),
        },
    },
    "mobilenet_v3_small": {
        "up_raw": 0.14 * MB,
        "up_embedding": 0.25 * KB,
        "down": 3.06 * MB,
        "delays": {
            "4g-5": (None, None, 0.61),
            "4g-15": (None, None, 0.20),
            "5g-50": (None, None, 0.06),
            "5g-100": (None, None, 0.03),
        },
    },
    "clicks": {  # ML-100K, DIN / SASRec / GRU4Rec alike
        "up_raw": 7.32 * KB,
        "up_embedding": 0.25 * KB,
        "down": 8.06 * KB,
        "delays": {
            "4g-5": (1.46e-3, 0.05e-3, 1.60e-3),
            "4g-15": (0.49e-3, 0.017e-3, 0.53e-3),
            "5g-50": (0.15e-3, 0.005e-3, 0.16e-3),
            "5g-100": (0.07e-3, 0.003e-3, 0.08e-3),
        },
    },
}


def paper_row(variant: str) -> str:
    """The paper's row for one of our variants: a DUET row is the paper's DUET whatever the
    conditioning (the paper reports one; its text conditions on the session, its code on
    the history)."""
    return variant.removesuffix("-history")


def rel_gain(value: float, base: float) -> float:
    """Relative gain over base, in percent of base."""
    return 100 * (value / base - 1)


# The authors' code (HelloZicky/DUET at 7cf8069, CPU patches only) run on our prepared data
# through `duet-sim data export-duet`: the same train rows as our Table 1 cells and the
# same test rows, seed 0, 2 epochs at their batch 1024 and lr 1e-3 (docs/results.md,
# "Parity"): folder -> model -> (test AUC, user AUC, train rows/s, peak RSS bytes).
THEIRS_CODE: dict[str, dict[str, tuple[float, float, float, float]]] = {
    "movielens-100k": {
        "sasrec": (0.8974, 0.8892, 7310, 4.22e9),
        "meta_sasrec": (0.9137, 0.9027, 5912, 3.71e9),
    },
    "movielens-100k-paper-ml100k": {
        "sasrec": (0.8223, 0.8127, 7658, 3.24e9),
        "meta_sasrec": (0.8481, 0.8327, 5670, 3.14e9),
    },
}

"""The data registry: every dataset name, its kind and raw folders, the splits and the
image input limits, defined once and imported wherever one is checked or listed (the CLI,
the scenario schema, prepare). No polars or pyarrow import, so `duet-sim --help` stays fast."""

from __future__ import annotations

from typing import NamedTuple


class Dataset(NamedTuple):
    kind: str  # "clicks" or "images"
    folders: tuple[str, ...]  # sub-folders of the data dir to try, in order; () for synthetic


DATASETS: dict[str, Dataset] = {
    "movielens-100k": Dataset("clicks", ("ml-100k",)),
    "movielens-1m": Dataset("clicks", ("ml-1m",)),
    "movielens-10m": Dataset("clicks", ("ml-10M100K", "ml-10m")),
    "movielens-20m": Dataset("clicks", ("ml-20m",)),
    "movielens-25m": Dataset("clicks", ("ml-25m",)),
    "movielens-latest": Dataset("clicks", ("ml-latest", "ml-latest-small")),
    "ckplus": Dataset("images", ("ck-plus-48", "CK+48", "ckplus", "CK+")),
    "synthetic-clicks": Dataset("clicks", ()),
    "synthetic-video": Dataset("images", ()),
}
DATASET_NAMES = tuple(DATASETS)

# The splits of every prepared dataset, in time order per user: train fits the models,
# val selects among them (epochs, settings), test is read once for the reported numbers.
SPLITS = ("train", "val", "test")

# The square sides a prepared image dataset may have: MobileNetV3's trunk has stride 32, so
# smaller inputs leave no spatial map, and beyond 1024 one CK+ frame is 3 MB per channel.
IMAGE_SIZES = range(32, 1025)
IMAGE_CHANNELS = (1, 3)  # gray, or the gray plane repeated (the paper's 224x224x3 input)


# Named data protocols, as `duet-sim data prepare --protocol NAME`: "options" are
# SessionOptions fields, "image" the image input. paper-ml100k is the authors' ML-100K as
# their code's config implies it (PAPER.md: a 30-core filter leaves 720 users and 795
# items, inside their 900-id vocabulary; history 30, sessions of 10 clicks, 1:4 train and
# 1:100 test negatives); h10-r30 gives real-time clicks beyond the history
# (docs/reproduction.md); the image ones are CK+ inputs: 48x1 is CK+48 as distributed, 224x3 the
# paper's (Table 5), 112x3 the largest the CPU grid affords (docs/results.md).
PROTOCOLS: dict[str, dict[str, dict[str, int]]] = {
    "paper-ml100k": {
        "options": {
            "k_core": 30,
            "history_length": 30,
            "session_length": 10,
            "train_negatives": 4,
            "test_negatives": 100,
        }
    },
    "h10-r30": {"options": {"history_length": 10, "realtime_size": 30}},
    "48x1": {"image": {"image_size": 48, "image_channels": 1}},
    "112x3": {"image": {"image_size": 112, "image_channels": 3}},
    "224x3": {"image": {"image_size": 224, "image_channels": 3}},
}


def check_image_input(size: int, channels: int) -> None:
    """Refuse an image size or channel count that prepare does not make.

    Raises:
        ValueError: naming the option, the value and the accepted range.
    """
    if not isinstance(size, int) or size not in IMAGE_SIZES:
        raise ValueError(
            f"image_size: expected an int in [{IMAGE_SIZES.start}, "
            f"{IMAGE_SIZES.stop - 1}], got {size!r}"
        )
    if channels not in IMAGE_CHANNELS:
        raise ValueError(f"image_channels: expected one of {IMAGE_CHANNELS}, got {channels!r}")

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


def check_image_input(size: int, channels: int) -> None:
    """Refuse an image size or channel count that prepare does not make.

    Raises:
        ValueError: naming the option, the value and the accepted range.
    """
    if not isinstance(size, int) or size not in IMAGE_SIZES:
        raise ValueError(f"image_size: expected an int in [{IMAGE_SIZES.start}, "
                         f"{IMAGE_SIZES.stop - 1}], got {size!r}")  # fmt: skip
    if channels not in IMAGE_CHANNELS:
        raise ValueError(f"image_channels: expected one of {IMAGE_CHANNELS}, got {channels!r}")

"""The data's named choices: the splits, the image input and its limits, the named protocols,
defined once and imported wherever one is checked or listed (the CLI, the scenario schema,
prepare); datasets are registered classes (pipelines/datasets.py). No polars or pyarrow
import, so `duet-sim --help` stays fast."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass

# The splits of every prepared dataset, in time order per user: train fits the models,
# val selects among them (epochs, settings), test is read once for the reported numbers.
SPLITS = ("train", "val", "test")

# The square sides a prepared image dataset may have: MobileNetV3's trunk has stride 32, so
# smaller inputs leave no spatial map, and beyond 1024 one CK+ frame is 3 MB per channel.
IMAGE_SIZES = range(32, 1025)
IMAGE_CHANNELS = (1, 3)  # gray, or the gray plane repeated (the paper's 224x224x3 input)


# Named data protocols, as `duet-sim data prepare --protocol NAME`: "options" are
# SessionOptions fields, "image" the image input. paper-ml100k is the authors' ML-100K as
# their code's config implies it (HelloZicky/DUET's movielens_100k_conf.json: id_vocab 900
# and a folder named ..._30u30i; a 30-core filter leaves 720 users and 795
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


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class ImageInput:
    """The frames of a prepared image dataset: square, resized (bilinear) from the raw ones."""

    image_size: Annotated[int, Field(ge=IMAGE_SIZES.start, le=IMAGE_SIZES.stop - 1)] = Field(
        48, description="square side frames are resized to (CK+48's own; the paper's: 224)"
    )
    image_channels: Literal[IMAGE_CHANNELS] = Field(  # type: ignore[valid-type]
        1, description="1: gray; 3: the gray plane repeated (the paper's 224x224x3 input)"
    )

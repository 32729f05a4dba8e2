"""The dataset registry: every dataset is one registered class saying what kind of samples it
gives, where its raw files live, its default protocol, the knobs of generated data, and how
to read it. `duet-sim data prepare`, a scenario's ``data:`` and the training recipe look a
dataset up here and never branch on its name.

A reader returns raw interactions or frames; pipelines/prepare.py turns them into sessions
and splits by the same protocol for every dataset of a kind. A new dataset is one
``@DATASETS.register("name")`` subclass of :class:`ClickDataset` or :class:`ImageDataset` in a
plugin module (docs/plugins.md: ``examples/plugins/csv_clicks.py`` reads any CSV click log).

Readers import polars and PIL when called, so listing the registry stays cheap.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from duet.registry import Registry

if TYPE_CHECKING:
    import polars as pl

Chunks = Callable[[], Iterable["pl.DataFrame"]]


class Dataset(ABC):
    """One dataset.

    Class attributes:
        kind: "clicks" or "images", the samples it gives (and the backbones that read them).
        folders: sub-folders of the data dir to try, in order, for its raw files; ``()``
            for generated data, which needs none.
        options: `pipelines.sessions.SessionOptions` fields that differ from the paper's
            protocol for this dataset.
        timestamps: its sessions carry recorded start times (``start_ts``), which a trace
            arrival mode replays.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    timestamps: ClassVar[bool] = False
    folders: ClassVar[tuple[str, ...]] = ()
    options: ClassVar[dict[str, Any]] = {}

    @classmethod
    def knobs(cls) -> type | None:
        """The dataclass of a generated dataset's knobs (``--synthetic KEY=VALUE``, a
        scenario's ``data.synthetic``); None for data read from files."""
        return None

    @abstractmethod
    def read(self, source: Path | None, knobs: Any, seed: int, image_size: int) -> tuple:
        """The raw data, from ``source`` (the raw folder; None for generated data), the
        knobs and seed of generated data, and for images the side frames are resized to;
        what it returns is the kind's (:class:`ClickDataset`, :class:`ImageDataset`)."""


class ClickDataset(Dataset):
    """A click log: users' timestamped interactions with items."""

    kind = "clicks"
    timestamps = True

    @abstractmethod
    def read(
        self, source: Path | None, knobs: Any, seed: int, image_size: int
    ) -> tuple[Chunks, pl.DataFrame]:
        """Raw interactions and items (``image_size`` is not used).

        Returns:
            ``chunks``, a callable yielding frames of ``user_id, item_id, ts`` (int64) of
            disjoint users in raw-id order (one frame for data that fits in memory; called
            twice), and the items frame ``item_id, title, genres`` (pipelines/movielens.py
            ``ITEMS_SCHEMA``).
        """


class ImageDataset(Dataset):
    """Videos of subjects: labelled frames, one video a session."""

    kind = "images"

    @abstractmethod
    def read(
        self, source: Path | None, knobs: Any, seed: int, image_size: int
    ) -> tuple[pl.DataFrame, list[str], int]:
        """Frames (pipelines/ckplus.py ``FRAMES_SCHEMA``), the class names their labels index,
        and the side of the square frames (``image_size`` unless the data fixes its own)."""


DATASETS: Registry[Dataset] = Registry("dataset", Dataset, builtins="pipelines.datasets")


class MovieLens(ClickDataset):
    """MovieLens ratings as implicit clicks, in any official layout (pipelines/movielens.py)."""

    def read(
        self, source: Path | None, knobs: Any, seed: int, image_size: int
    ) -> tuple[Chunks, pl.DataFrame]:
        from pipelines.movielens import read_movielens

        assert source is not None, f"{self.name} is read from files"
        interactions, items = read_movielens(source)
        return (lambda: [interactions]), items


@DATASETS.register("movielens-100k")
class MovieLens100K(MovieLens):
    folders = ("ml-100k",)


@DATASETS.register("movielens-1m")
class MovieLens1M(MovieLens):
    folders = ("ml-1m",)


@DATASETS.register("movielens-10m")
class MovieLens10M(MovieLens):
    folders = ("ml-10M100K", "ml-10m")


@DATASETS.register("movielens-20m")
class MovieLens20M(MovieLens):
    folders = ("ml-20m",)


@DATASETS.register("movielens-25m")
class MovieLens25M(MovieLens):
    folders = ("ml-25m",)


@DATASETS.register("movielens-latest")
class MovieLensLatest(MovieLens):
    folders = ("ml-latest", "ml-latest-small")


@DATASETS.register("ckplus")
class CKPlus(ImageDataset):
    """CK+ in the CK+48 emotion-folder crop or the original Cohn-Kanade layout."""

    folders = ("ck-plus-48", "CK+48", "ckplus", "CK+")

    def read(
        self, source: Path | None, knobs: Any, seed: int, image_size: int
    ) -> tuple[pl.DataFrame, list[str], int]:
        from pipelines.ckplus import read_ckplus

        assert source is not None, "ckplus is read from files"
        frames, classes = read_ckplus(source, image_size)
        return frames, classes, image_size


@DATASETS.register("synthetic-clicks")
class SyntheticClicks(ClickDataset):
    """Embedded click data with persistent tastes the real-time window reveals
    (pipelines/synthetic.py). A 10-click history and R = 30 real-time clicks: with the
    paper's history 30 and R = 10 the real-time window lies inside the history and adds
    nothing the base model lacks; this dataset exists to show what it adds."""

    options = {"history_length": 10, "realtime_size": 30}

    @classmethod
    def knobs(cls) -> type:
        from pipelines.synthetic import SyntheticClicksConfig

        return SyntheticClicksConfig

    def read(
        self, source: Path | None, knobs: Any, seed: int, image_size: int
    ) -> tuple[Chunks, pl.DataFrame]:
        from pipelines.synthetic import synthetic_click_chunks, synthetic_items

        return (lambda: synthetic_click_chunks(knobs, seed)), synthetic_items(knobs)


@DATASETS.register("synthetic-video")
class SyntheticVideo(ImageDataset):
    """Embedded striped-pattern videos seen through per-device styles (pipelines/synthetic.py)."""

    @classmethod
    def knobs(cls) -> type:
        from pipelines.synthetic import SyntheticVideoConfig

        return SyntheticVideoConfig

    def read(
        self, source: Path | None, knobs: Any, seed: int, image_size: int
    ) -> tuple[pl.DataFrame, list[str], int]:
        from pipelines.synthetic import synthetic_video

        return synthetic_video(knobs, seed), knobs.class_names, knobs.image_size

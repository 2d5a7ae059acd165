"""One LightningDataModule for every dataset: the dataset class is the only thing that varies.

A dataset config (``conf/data/*.yaml``) names a dataset factory (``_partial_`` so the module can
build the train and val splits), the label convention (:class:`LabelSpec`) and the geometry.
Every dataset's ``__getitem__`` returns ``{"label", "instance", "image", "path"}`` as described
in :mod:`spadelab.data.labels`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from spadelab.data.labels import LabelSpec
from spadelab.data.transforms import PairedTransform


class SemanticDataModule(pl.LightningDataModule):
    def __init__(
        self,
        dataset: Callable[..., Dataset],
        name: str = "dataset",
        label_nc: int = 10,
        contain_dontcare_label: bool = False,
        use_instance: bool = False,
        eval_ignore_index: int | None = None,
        eval_mapping: str = "identity",
        crop_size: int = 256,
        load_size: int | None = None,
        aspect_ratio: float = 1.0,
        # Not the loader's: the data config is this setting's one home because it depends on
        # the image size (official: Cityscapes at 512x256 "more"); the SPADE presets read it as
        # model.generator.num_upsampling_layers=${data.num_upsampling_layers}.
        num_upsampling_layers: str = "normal",
        preprocess_mode: str = "resize_and_crop",
        flip: bool = True,
        batch_size: int = 1,
        val_batch_size: int | None = None,
        num_workers: int = 0,
        max_train_samples: int | None = None,
        max_val_samples: int | None = None,
        check_on_setup: bool = True,
        on_bad_file: str = "error",
    ) -> None:
        super().__init__()
        for setting, value, low in (
            ("batch_size", batch_size, 1),
            ("val_batch_size", val_batch_size, 1),
            ("num_workers", num_workers, 0),
            ("max_train_samples", max_train_samples, 1),
            ("max_val_samples", max_val_samples, 1),
            ("crop_size", crop_size, 1),
            ("label_nc", label_nc, 1),
        ):
            if value is None and setting not in ("batch_size", "num_workers", "crop_size"):
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(
                    f"data.{setting}={value!r} must be an integer >= {low}"
                    + (" (or null: all samples)" if setting.startswith("max_") else "")
                )
        if on_bad_file not in ("error", "skip"):
            raise ValueError(f"data.on_bad_file={on_bad_file} must be error or skip")
        self.on_bad_file = on_bad_file
        self.dataset_factory = dataset
        self.name = name
        self.spec = LabelSpec(label_nc, contain_dontcare_label, use_instance, eval_ignore_index)
        self.eval_mapping = eval_mapping
        self.crop_size = crop_size
        self.aspect_ratio = aspect_ratio
        self.train_transform = PairedTransform(
            preprocess_mode, load_size, crop_size, aspect_ratio, flip=flip
        )
        self.val_transform = PairedTransform(
            preprocess_mode, load_size, crop_size, aspect_ratio, flip=False
        )
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.num_workers = num_workers
        self.max_train_samples = max_train_samples
        self.max_val_samples = max_val_samples
        self.check_on_setup = check_on_setup
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the images the generator must produce."""
        return self.train_transform.image_size

    @property
    def palette(self) -> np.ndarray | None:
        return getattr(self._any_split(), "palette", None)

    @property
    def class_names(self) -> list[str] | None:
        names = getattr(self._any_split(), "class_names", None)
        return list(names) if names is not None else None

    def _any_split(self) -> Dataset:
        if self.val_set is None and self.train_set is None:
            self.setup("validate")
        return self.val_set if self.val_set is not None else self.train_set

    def build_split(self, split: str) -> Dataset:
        transform = self.train_transform if split == "train" else self.val_transform
        dataset = self.dataset_factory(split=split, transform=transform)
        limit = self.max_train_samples if split == "train" else self.max_val_samples
        if limit is not None and limit < len(dataset):
            subset = torch.utils.data.Subset(dataset, range(limit))
            for attribute in ("palette", "class_names", "styles"):
                if hasattr(dataset, attribute):
                    setattr(subset, attribute, getattr(dataset, attribute))
            dataset = subset
        if len(dataset) == 0:
            root = getattr(self.dataset_factory, "keywords", {}).get("root")
            raise ValueError(
                f"data={self.name}: no {split} samples under data.dataset.root={root}: the "
                "folder holds no files this dataset config selects (its layout, scene or class "
                "filters); check the root and the data= choice, or run `spadelab data check`"
            )
        if self.check_on_setup:
            from spadelab.data.check import quick_check

            quick_check(dataset, self.spec, split=split, name=self.name)
        return GuardedDataset(dataset, self.on_bad_file) if split == "train" else dataset

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and self.train_set is None:
            self.train_set = self.build_split("train")
        if self.val_set is None:
            self.val_set = self.build_split("val")

    def _loader(self, dataset: Dataset, batch_size: int, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            drop_last=shuffle and len(dataset) >= batch_size,
            persistent_workers=self.num_workers > 0,
            collate_fn=collate,
        )

    def train_dataloader(self) -> DataLoader:
        self.setup("fit")
        return self._loader(self.train_set, self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        self.setup("validate")
        return self._loader(self.val_set, self.val_batch_size, shuffle=False)

    def fixed_batch(self, n: int) -> dict[str, Any]:
        """The first ``n`` validation samples, for sample grids that stay comparable."""
        self.setup("validate")
        return collate([self.val_set[i] for i in range(min(n, len(self.val_set)))])


class GuardedDataset(Dataset):
    """A training split whose unreadable files fail in one line naming the file, or are
    skipped (``data.on_bad_file=skip``) and reported by the training run at its end."""

    def __init__(self, dataset: Dataset, on_bad_file: str) -> None:
        self.dataset = dataset
        self.on_bad_file = on_bad_file
        for attribute in ("palette", "class_names", "styles"):
            if hasattr(dataset, attribute):
                setattr(self, attribute, getattr(dataset, attribute))

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        try:
            return self.dataset[index]
        except (OSError, ValueError) as error:
            message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            if self.on_bad_file == "skip":
                return {"skipped": message}
            raise BadFileError(
                f"{message} (training sample {index}); fix or remove the file, or set "
                "data.on_bad_file=skip to leave such files out"
            ) from None


class BadFileError(ValueError):
    pass


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    skipped = [s["skipped"] for s in samples if "skipped" in s]
    if skipped:
        samples = [s for s in samples if "skipped" not in s]
        if not samples:
            raise BadFileError(
                f"every sample of a training batch is unreadable, e.g. {skipped[0]}; "
                "run `spadelab data check`"
            )
    batch: dict[str, Any] = {}
    for key in samples[0]:
        values = [sample[key] for sample in samples]
        batch[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    if skipped:
        batch["skipped"] = skipped
    return batch

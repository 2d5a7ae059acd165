"""Find every data problem at once, naming the files, instead of one crash per epoch.

Two entry points:

- :func:`check_dataset` — the full scan behind ``spadelab data check``: every pair is opened,
  verified (``PIL verify()`` catches bad chunks/CRCs) and fully decoded (``load()`` catches
  truncation), sizes are compared, label modes and converted label values are checked, and all
  problems of all splits come back in one :class:`CheckReport`.
- :func:`quick_check` — what :class:`~spadelab.data.datamodule.SemanticDataModule` runs at
  setup: pairing, emptiness, the label convention vs the config and a few sampled files
  (headers, one or two decoded labels). It never opens every file, so it stays well under a
  second on 20k-file datasets, and raises one :class:`DataError` listing everything it found.

Datasets are duck-typed: file datasets expose ``pairs`` (image, label, instance-or-None),
``unmatched``, ``convert_label``/``convert_instance`` and ``label_modes``/``instance_modes``
(see :class:`spadelab.data.files.PairedFileDataset`); others (the synthetic landscapes) are
checked through ``__getitem__``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFile, UnidentifiedImageError
from torch.utils.data import Dataset, Subset

from spadelab.data.labels import LabelSpec

# Problem kinds, in the order a summary lists them.
SPLIT = "split unavailable"
EMPTY = "empty split"
CONFIG = "config mismatch"
UNPAIRED = "unpaired file"
UNREADABLE = "unreadable file"
CHANNELS = "wrong channels"
SIZE = "size mismatch"
RANGE = "label out of range"
DECODE = "label not decodable"
KIND_ORDER = (SPLIT, EMPTY, CONFIG, UNPAIRED, UNREADABLE, CHANNELS, SIZE, RANGE, DECODE)

IMAGE_MODES = frozenset({"RGB", "RGBA", "L", "LA", "P", "CMYK", "YCbCr"})
INDEX_MODES = frozenset({"L", "P", "I", "I;16", "I;16B", "I;16L", "I;16N"})


class DataError(ValueError):
    """The dataset on disk does not match what the config says; the message lists every problem."""


@dataclass(frozen=True)
class Problem:
    kind: str
    message: str
    path: str | None = None
    split: str | None = None


@dataclass
class CheckReport:
    name: str
    spec: LabelSpec
    pairs: dict[str, int] = field(default_factory=dict)
    files_read: int = 0
    samples_checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def paths(self, kind: str | None = None) -> list[str]:
        """Files named by problems (of one kind), for tests and scripts."""
        return [p.path for p in self.problems if p.path and (kind is None or p.kind == kind)]

    def summary(self, limit_per_kind: int | None = 20) -> str:
        """One readable report: per split, problems grouped by kind, files named."""
        counts = ", ".join(f"{split} {n} pairs" for split, n in self.pairs.items()) or "no splits"
        status = "OK" if self.ok else f"{len(self.problems)} problem(s)"
        lines = [
            f"data check: {self.name} ({counts}; {self.files_read} files read"
            + (f", {self.samples_checked} samples checked" if self.samples_checked else "")
            + "; "
            f"label_nc={self.spec.label_nc}, contain_dontcare_label="
            f"{self.spec.contain_dontcare_label}, use_instance={self.spec.use_instance}): {status}"
        ]
        splits = list(self.pairs) + sorted(
            {p.split or "-" for p in self.problems} - set(self.pairs)
        )
        for split in splits:
            problems = [p for p in self.problems if (p.split or "-") == split]
            if not problems:
                lines.append(f"{split}: ok")
                continue
            by_kind = Counter(p.kind for p in problems)
            lines.append(f"{split}: " + ", ".join(f"{k} x{n}" for k, n in by_kind.items()))
            for kind in sorted(by_kind, key=lambda k: KIND_ORDER.index(k)):
                of_kind = [p for p in problems if p.kind == kind]
                shown = of_kind if limit_per_kind is None else of_kind[:limit_per_kind]
                lines.extend(f"  [{kind}] {p.message}" for p in shown)
                if len(of_kind) > len(shown):
                    lines.append(
                        f"  [{kind}] ... and {len(of_kind) - len(shown)} more (pass all=true)"
                    )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "pairs": self.pairs,
            "files_read": self.files_read,
            "samples_checked": self.samples_checked,
            "problems": [p.__dict__ for p in self.problems],
        }

    def raise_if_problems(self) -> None:
        if not self.ok:
            raise DataError(self.summary())


# --- helpers -----------------------------------------------------------------------------------
@contextlib.contextmanager
def _strict_truncation() -> Iterator[None]:
    """Some libraries set LOAD_TRUNCATED_IMAGES globally, which would hide truncated files."""
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def _read_fully(path: Path, problems: list[Problem], split: str) -> Image.Image | None:
    """verify() then load(): verify catches corrupt chunks, load catches truncated data."""
    try:
        with Image.open(path) as probe:
            probe.verify()
        image = Image.open(path)
        image.load()
        return image
    except FileNotFoundError:
        problems.append(
            Problem(UNREADABLE, f"{path}: file disappeared during the check", str(path), split)
        )
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        problems.append(
            Problem(UNREADABLE, f"{path}: unreadable or truncated ({error})", str(path), split)
        )
    return None


def _mode_problem(
    image: Image.Image, path: Path, allowed: frozenset[str], what: str, split: str
) -> Problem | None:
    if image.mode in allowed:
        return None
    channels = len(image.getbands())
    hint = ""
    if what == "label" and channels >= 3:
        hint = " (colour-coded? use data=folder with data.dataset.palette_file)"
    return Problem(
        CHANNELS,
        f"{path}: {what} has {channels} channel(s) (mode {image.mode}); expected modes "
        f"{sorted(allowed)}{hint}",
        str(path),
        split,
    )


def _range_problem(
    values: np.ndarray, path: Path | str, spec: LabelSpec, split: str
) -> Problem | None:
    n = spec.num_label_values
    bad = values[(values < 0) | (values >= n)]
    if bad.size == 0:
        return None
    found = np.unique(bad)
    listed = ", ".join(str(v) for v in found[:10].tolist()) + (" ..." if len(found) > 10 else "")
    return Problem(
        RANGE,
        f"{path}: label values [{listed}] outside [0, {n}) (label_nc={spec.label_nc}, "
        f"contain_dontcare_label={spec.contain_dontcare_label}; {bad.size} pixels); set "
        "data.label_nc / data.contain_dontcare_label or fix the file",
        str(path),
        split,
    )


def _config_problems(dataset: Any, spec: LabelSpec, split: str, name: str) -> list[Problem]:
    """The dataset's own label convention vs the config: caught before any file is opened."""
    problems = []
    values = getattr(dataset, "num_label_values", None)
    if isinstance(values, int) and values > spec.num_label_values:
        problems.append(
            Problem(
                CONFIG,
                f"data={name}: the dataset's labels use values 0..{values - 1} "
                f"(label_nc={getattr(dataset, 'label_nc', '?')}, contain_dontcare_label="
                f"{getattr(dataset, 'contain_dontcare_label', '?')}) but the config allows "
                f"0..{spec.num_label_values - 1} (data.label_nc={spec.label_nc}, "
                f"data.contain_dontcare_label={spec.contain_dontcare_label}); fix data.label_nc",
                None,
                split,
            )
        )
    if spec.use_instance and getattr(dataset, "has_instances", True) is False:
        problems.append(
            Problem(
                CONFIG,
                f"data={name}: data.use_instance=true but the {split} split has no instance "
                "maps; set data.use_instance=false or provide the instance maps",
                None,
                split,
            )
        )
    return problems


def _unmatched_problems(dataset: Any, split: str) -> list[Problem]:
    unmatched: Mapping[str, Sequence[Path]] = getattr(dataset, "unmatched", {}) or {}
    return [
        Problem(UNPAIRED, f"{path}: {kind}", str(path), split)
        for kind, paths in unmatched.items()
        for path in paths
    ]


def _unwrap(dataset: Dataset) -> tuple[Dataset, Callable[[int], int]]:
    """Peel Subsets off (max_train_samples) so pairs of the underlying dataset are reachable."""
    chain: list[Sequence[int]] = []
    while isinstance(dataset, Subset):
        chain.append(dataset.indices)
        dataset = dataset.dataset

    def to_base(index: int) -> int:
        for indices in chain:
            index = int(indices[index])
        return index

    return dataset, to_base


def _sample_positions(n: int, k: int) -> list[int]:
    """k spread-out positions (first, last, middle ...): cheap yet not only the first file."""
    if n <= 0:
        return []
    return sorted({round(i * (n - 1) / max(1, k - 1)) for i in range(min(k, n))})


# --- full scan ---------------------------------------------------------------------------------
def _check_pair(
    dataset: Any, index: int, spec: LabelSpec, split: str
) -> tuple[list[Problem], int]:
    image_path, label_path, instance_path = dataset.pairs[index]
    problems: list[Problem] = []
    read = 0
    sizes: dict[Path, tuple[int, int]] = {}

    image = _read_fully(image_path, problems, split)
    read += 1
    if image is not None:
        sizes[image_path] = image.size
        if problem := _mode_problem(image, image_path, IMAGE_MODES, "image", split):
            problems.append(problem)

    label = _read_fully(label_path, problems, split)
    read += 1
    if label is not None:
        sizes[label_path] = label.size
        modes = getattr(dataset, "label_modes", INDEX_MODES)
        if problem := _mode_problem(label, label_path, modes, "label", split):
            problems.append(problem)
        else:
            try:
                values = dataset.convert_label(label, label_path)
            except ValueError as error:
                problems.append(Problem(DECODE, str(error), str(label_path), split))
            else:
                if problem := _range_problem(values, label_path, spec, split):
                    problems.append(problem)

    if instance_path is not None:
        instance = _read_fully(instance_path, problems, split)
        read += 1
        if instance is not None:
            sizes[instance_path] = instance.size
            modes = getattr(dataset, "instance_modes", INDEX_MODES)
            if problem := _mode_problem(instance, instance_path, modes, "instance map", split):
                problems.append(problem)

    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{path} {w}x{h}" for path, (w, h) in sizes.items())
        culprit = label_path if sizes.get(label_path) != sizes.get(image_path) else instance_path
        problems.append(Problem(SIZE, f"sizes differ: {listed}", str(culprit), split))
    return problems, read


def _check_samples(
    dataset: Dataset, spec: LabelSpec, split: str, positions: Sequence[int]
) -> list[Problem]:
    """For datasets without files: load samples and check shapes and label range."""
    problems = []
    for position in positions:
        try:
            sample = dataset[position]
        except Exception as error:  # noqa: BLE001 - any failure is a finding here
            problems.append(Problem(UNREADABLE, f"sample {position}: {error}", None, split))
            continue
        label = sample["label"]
        where = sample.get("path") or f"sample {position}"
        if not isinstance(label, torch.Tensor) or label.dim() != 3 or label.shape[0] != 1:
            shape = tuple(label.shape) if isinstance(label, torch.Tensor) else type(label)
            problems.append(
                Problem(
                    CHANNELS, f"{where}: label has shape {shape}, expected (1, H, W)", None, split
                )
            )
            continue
        if problem := _range_problem(label.numpy(), where, spec, split):
            problems.append(problem)
        image = sample.get("image")
        if isinstance(image, torch.Tensor) and image.shape[-2:] != label.shape[-2:]:
            problems.append(
                Problem(
                    SIZE,
                    f"{where}: image {tuple(image.shape)} and label {tuple(label.shape)} differ",
                    None,
                    split,
                )
            )
    return problems


def _build_split(factory: Callable[..., Dataset], split: str) -> Dataset:
    """Build a split without the transform (raw sizes) and, if supported, non-strict pairing."""
    kwargs: dict[str, Any] = {"split": split, "transform": None}
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        parameters = {}
    if "strict" in parameters:
        kwargs["strict"] = False
    return factory(**kwargs)


def check_dataset(
    dataset_or_cfg: Dataset | Mapping[str, Any],
    spec: LabelSpec | None = None,
    *,
    splits: Sequence[str] = ("train", "val"),
    split: str | None = None,
    name: str | None = None,
    workers: int | None = None,
    max_samples: int = 64,
    progress: Callable[[str, int, int], None] | None = None,
) -> CheckReport:
    """Scan every file of a dataset (or of each split of a data config) once.

    ``dataset_or_cfg``: a dataset object, or a data config (``cfg.data``: the mapping with
    ``dataset``, ``label_nc`` ...) whose splits are built here with ``transform=None`` and
    ``strict=False`` so unpaired files become findings rather than an exception. ``spec``
    defaults to the config's label settings (or the dataset's own ``spec``). Datasets without
    files are checked on ``max_samples`` samples. Never raises for data problems: read the
    report (``report.ok``, ``report.summary()``, ``report.raise_if_problems()``).
    """
    workers = workers or min(4, os.cpu_count() or 1)
    datasets: dict[str, Dataset] = {}
    early: list[Problem] = []
    if isinstance(dataset_or_cfg, Mapping) or hasattr(dataset_or_cfg, "keys"):
        import hydra.utils

        cfg = dataset_or_cfg
        name = name or str(cfg.get("name", "dataset"))
        spec = spec or LabelSpec(
            int(cfg.get("label_nc")),
            bool(cfg.get("contain_dontcare_label", False)),
            bool(cfg.get("use_instance", False)),
            cfg.get("eval_ignore_index"),
        )
        missing = missing_keys(cfg)
        if missing:
            listed = ", ".join(f"{key}=..." for key in missing)
            early.append(Problem(CONFIG, f"data={name}: required settings missing: {listed}"))
        try:
            factory = None if missing else hydra.utils.instantiate(cfg["dataset"])
        except Exception as error:  # noqa: BLE001 - reported, not raised
            early.append(Problem(SPLIT, f"data={name}: cannot build the dataset: {_root(error)}"))
            factory = None
        for split_name in splits if factory is not None else ():
            try:
                datasets[split_name] = _build_split(factory, split_name)
            except Exception as error:  # noqa: BLE001 - a missing split is one finding
                early.append(Problem(SPLIT, f"{_root(error)}", None, split_name))
    else:
        dataset = dataset_or_cfg
        base, _ = _unwrap(dataset)
        spec = spec or getattr(base, "spec", None)
        if spec is None:
            raise ValueError("check_dataset(dataset) needs spec= (a LabelSpec) for this dataset")
        name = name or getattr(base, "name", type(base).__name__)
        datasets[split or getattr(base, "split", "data")] = dataset

    report = CheckReport(name=name or "dataset", spec=spec, problems=early)
    with _strict_truncation(), ThreadPoolExecutor(max_workers=workers) as pool:
        for split_name, dataset in datasets.items():
            base, to_base = _unwrap(dataset)
            n = len(dataset)
            report.pairs[split_name] = n
            report.problems.extend(_config_problems(base, spec, split_name, report.name))
            report.problems.extend(_unmatched_problems(base, split_name))
            if n == 0:
                report.problems.append(
                    Problem(
                        EMPTY,
                        f"data={report.name}: the {split_name} split has no pairs",
                        None,
                        split_name,
                    )
                )
                continue
            if not hasattr(base, "pairs"):
                positions = [to_base(p) for p in _sample_positions(n, max_samples)]
                report.problems.extend(_check_samples(base, spec, split_name, positions))
                report.samples_checked += len(positions)
                continue
            indices = [to_base(p) for p in range(n)]
            results = pool.map(
                functools.partial(_check_pair, base, spec=spec, split=split_name), indices
            )
            for done, (problems, read) in enumerate(results, start=1):
                report.problems.extend(problems)
                report.files_read += read
                if progress is not None:
                    progress(split_name, done, n)
    return report


def missing_keys(cfg: Any) -> list[str]:
    """``???`` values (e.g. data.dataset.root) as full keys the user can pass as overrides.

    Walks the tree without resolving interpolations: ``OmegaConf.missing_keys`` would raise on
    ``label_nc: ${data.label_nc}`` when ``data.label_nc`` is itself ``???``.
    """
    from omegaconf import DictConfig, OmegaConf

    if not isinstance(cfg, DictConfig):
        return []
    missing = []
    for key in cfg:
        if OmegaConf.is_missing(cfg, key):
            missing.append(cfg._get_full_key(key))
        elif not OmegaConf.is_interpolation(cfg, key):
            child = cfg._get_node(key)
            if isinstance(child, DictConfig):
                missing.extend(missing_keys(child))
    return sorted(missing)


def _root(error: BaseException) -> str:
    """Hydra wraps constructor errors; the innermost message is the one naming the problem."""
    while error.__cause__ is not None:
        error = error.__cause__
    return str(error)


# --- cheap check at training start -------------------------------------------------------------
def quick_check(
    dataset: Dataset,
    spec: LabelSpec,
    split: str = "train",
    name: str = "dataset",
    samples: int = 3,
) -> None:
    """Cheap sanity checks at setup; raises one :class:`DataError` listing every finding."""
    base, to_base = _unwrap(dataset)
    n = len(dataset)
    problems = _config_problems(base, spec, split, name) + _unmatched_problems(base, split)
    if n == 0:
        problems.append(Problem(EMPTY, f"the {split} split has no samples", None, split))
    positions = [to_base(p) for p in _sample_positions(n, samples)]
    if n and hasattr(base, "pairs"):
        for rank, index in enumerate(positions):
            problems.extend(_quick_pair(base, index, spec, split, decode_label=rank < 2))
    elif n:
        problems.extend(_check_samples(base, spec, split, positions[:2]))
    if problems:
        lines = "\n".join(f"  [{p.kind}] {p.message}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise DataError(
            f"data={name}, {split} split: {len(problems)} problem(s) found at setup:\n{lines}{more}"
            f"\nRun `spadelab data check data={name} ...` with the same overrides for a full scan"
        )


def _quick_pair(
    dataset: Any, index: int, spec: LabelSpec, split: str, decode_label: bool
) -> list[Problem]:
    """Headers only (Image.open reads size and mode lazily), plus optionally one label decode."""
    image_path, label_path, instance_path = dataset.pairs[index]
    problems: list[Problem] = []
    sizes: dict[Path, tuple[int, int]] = {}
    checks = [(image_path, IMAGE_MODES, "image"), (label_path, None, "label")]
    if instance_path is not None:
        checks.append(
            (instance_path, getattr(dataset, "instance_modes", INDEX_MODES), "instance map")
        )
    for path, modes, what in checks:
        modes = modes or getattr(dataset, "label_modes", INDEX_MODES)
        try:
            with Image.open(path) as image:
                sizes[path] = image.size
                if problem := _mode_problem(image, path, modes, what, split):
                    problems.append(problem)
                    continue
                if what == "label" and decode_label:
                    values = dataset.convert_label(image, path)
                    if problem := _range_problem(values, path, spec, split):
                        problems.append(problem)
        except (UnidentifiedImageError, OSError, SyntaxError) as error:
            problems.append(
                Problem(UNREADABLE, f"{path}: cannot read ({error})", str(path), split)
            )
        except ValueError as error:
            problems.append(Problem(DECODE, str(error), str(path), split))
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{path} {w}x{h}" for path, (w, h) in sizes.items())
        problems.append(Problem(SIZE, f"sizes differ: {listed}", str(label_path), split))
    return problems

"""A small segmentation "judge" trained on the real images of a dataset.

Used where no pretrained segmenter exists (the synthetic datasets, or offline machines). Its
own score on the real validation images is the ceiling a generator can reach under it; its
pooled bottleneck features feed ``fd_judge``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spadelab.atomic import atomic_path, file_lock
from spadelab.config import JudgeConfig
from spadelab.metrics.segmentation import ConfusionMatrix

__all__ = [
    "JudgeNet",
    "JudgeSegmenter",
    "config_hash",
    "evaluate_segmentation",
    "load_or_train_judge",
    "train_judge",
]

LabelMap = Callable[[Tensor], Tensor]


def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def config_hash(config: Mapping[str, Any]) -> str:
    """Stable 16-hex-digit key of a config: sha1 of a sorted, compact JSON dump."""
    text = json.dumps(_plain(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


class _ConvBlock(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class JudgeNet(nn.Module):
    """Compact U-Net: images (N, 3, H, W) in [-1, 1] -> logits (N, C, H, W); any H, W.

    ``width=16, levels=4`` gives channels 16-32-64-128 and ~0.47M parameters.
    """

    def __init__(self, num_classes: int, width: int = 16, levels: int = 4) -> None:
        super().__init__()
        if num_classes < 1 or width < 1 or levels < 1:
            raise ValueError(
                f"JudgeNet needs num_classes, width, levels >= 1 (got {num_classes}, {width}, {levels})"
            )
        self.config = {"num_classes": num_classes, "width": width, "levels": levels}
        chans = [width * 2**i for i in range(levels)]
        self.encoders = nn.ModuleList(
            _ConvBlock(cin, cout) for cin, cout in zip([3, *chans[:-1]], chans)
        )
        self.decoders = nn.ModuleList(
            _ConvBlock(chans[i + 1] + chans[i], chans[i]) for i in reversed(range(levels - 1))
        )
        self.head = nn.Conv2d(chans[0], num_classes, 1)

    @property
    def feature_dim(self) -> int:
        return self.config["width"] * 2 ** (self.config["levels"] - 1)

    def _encode(self, x: Tensor) -> list[Tensor]:
        skips = []
        for i, enc in enumerate(self.encoders):
            x = enc(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        return skips

    def forward(self, images: Tensor) -> Tensor:
        skips = self._encode(images)
        x = skips[-1]
        for dec, skip in zip(self.decoders, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = dec(torch.cat([x, skip], 1))
        return self.head(x)

    def features(self, images: Tensor) -> Tensor:
        """Global-average-pooled bottleneck, (N, feature_dim)."""
        return self._encode(images)[-1].mean(dim=(2, 3))


class JudgeSegmenter:
    """Same interface as ``TorchScriptSegmenter``: images in [-1, 1] -> logits (N, C, H, W)."""

    def __init__(self, model: JudgeNet, device: torch.device | str | None = None) -> None:
        self.device = (
            torch.device(device) if device is not None else next(model.parameters()).device
        )
        self.model = model.to(self.device).eval()
        self.num_classes = model.config["num_classes"]

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        self.model.eval()
        return self.model(images.to(self.device, torch.float32))

    @torch.no_grad()
    def features(self, images: Tensor) -> Tensor:
        self.model.eval()
        return self.model.features(images.to(self.device, torch.float32))


def _targets(batch: Mapping[str, Any], map_label: LabelMap | None, device: torch.device) -> Tensor:
    label = batch["label"]
    if label.dim() == 4:
        label = label[:, 0]
    label = label.to(device).long()
    return map_label(label).long() if map_label is not None else label


def _logits_at(logits: Tensor, size: torch.Size) -> Tensor:
    if logits.shape[-2:] != size:
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    return logits


@torch.no_grad()
def evaluate_segmentation(
    segmenter: Callable[[Tensor], Tensor],
    loader: Iterable[Mapping[str, Any]],
    num_classes: int,
    ignore_index: int | None,
    map_label: LabelMap | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Scores of ``segmenter`` on the loader's real images (the judge's ceiling)."""
    device = torch.device(device)
    cm = ConfusionMatrix(num_classes, ignore_index, device=device)
    n = 0
    for batch in loader:
        target = _targets(batch, map_label, device)
        logits = _logits_at(segmenter(batch["image"].to(device).float()), target.shape[-2:])
        cm.update(logits.argmax(1), target)
        n += target.shape[0]
    return cm.compute() | {"num_images": n}


def _cycle(loader: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("the judge's train_loader yielded no batches")


def train_judge(
    train_loader: Iterable[Mapping[str, Any]],
    val_loader: Iterable[Mapping[str, Any]],
    num_classes: int,
    ignore_index: int | None = None,
    *,
    steps: int,
    lr: float = JudgeConfig.lr,
    device: torch.device | str = "cpu",
    seed: int = JudgeConfig.seed,
    width: int = JudgeConfig.width,
    levels: int = JudgeConfig.levels,
    weight_decay: float = 1e-4,
    map_label: LabelMap | None = None,
) -> tuple[JudgeNet, dict[str, Any]]:
    """Train a :class:`JudgeNet` for ``steps`` AdamW steps (cosine LR), cycling the loader.

    Deterministic given ``seed``: the global torch RNG is forked and seeded for the whole
    training, so shuffling and augmentation that draw from it (num_workers=0, or worker seeds
    derived from it) repeat bit for bit whatever ran before in the process.
    ``map_label`` turns the batch's label (N, H, W) into evaluation labels (e.g. Cityscapes
    train ids). Returns the model (eval mode) and a report with the validation ceiling.
    """
    if steps < 1:
        raise ValueError(f"judge steps={steps} must be >= 1")
    # The judge is a pure function of (data, config, seed): initialisation, the loader's
    # shuffling and the augmentation all draw from a stream seeded here, never from whatever
    # state earlier work in the process left behind (a sweep trains rows before evaluating).
    devices = [torch.device(device).index or 0] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return _train_judge(
            train_loader,
            val_loader,
            num_classes,
            ignore_index,
            steps,
            lr,
            device,
            width,
            levels,
            weight_decay,
            map_label,
        )


def _train_judge(
    train_loader: Iterable[Mapping[str, Any]],
    val_loader: Iterable[Mapping[str, Any]],
    num_classes: int,
    ignore_index: int | None,
    steps: int,
    lr: float,
    device: torch.device | str,
    width: int,
    levels: int,
    weight_decay: float,
    map_label: LabelMap | None,
) -> tuple[JudgeNet, dict[str, Any]]:
    device = torch.device(device)
    model = JudgeNet(num_classes, width, levels).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    ce_ignore = ignore_index if ignore_index is not None else -100
    model.train()
    data = _cycle(train_loader)
    loss_value = math.nan
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        batch = next(data)
        target = _targets(batch, map_label, device)
        logits = _logits_at(model(batch["image"].to(device).float()), target.shape[-2:])
        loss = F.cross_entropy(logits, target, ignore_index=ce_ignore)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"judge loss is {loss.item()} at step {step}: every pixel ignored "
                f"(ignore_index={ignore_index}) or lr={lr} too high"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_value = loss.item()
    model.eval()
    scores = evaluate_segmentation(
        JudgeSegmenter(model), val_loader, num_classes, ignore_index, map_label, device
    )
    report = {
        "val_miou": scores["miou"],
        "val_accuracy": scores["accuracy"],
        "val_per_class_iou": scores["per_class_iou"],
        "val_num_classes_present": scores["num_classes_present"],
        "num_val_images": scores["num_images"],
        "final_train_loss": loss_value,
        "num_params": sum(p.numel() for p in model.parameters()),
    }
    return model, report


def load_or_train_judge(
    cache_dir: str | os.PathLike[str], cache_key: str, *args: Any, **kwargs: Any
) -> tuple[JudgeNet, dict[str, Any]]:
    """:func:`_load_or_train_judge` under a per-key file lock: concurrent evaluations train a
    missing judge once (the others wait, then load it from the cache)."""
    with file_lock(Path(cache_dir) / f"judge-{cache_key}.lock"):
        return _load_or_train_judge(cache_dir, cache_key, *args, **kwargs)


def _load_or_train_judge(
    cache_dir: str | os.PathLike[str],
    cache_key: str,
    train_loader: Iterable[Mapping[str, Any]] | None,
    val_loader: Iterable[Mapping[str, Any]] | None,
    num_classes: int,
    ignore_index: int | None = None,
    *,
    steps: int,
    lr: float = JudgeConfig.lr,
    device: torch.device | str = "cpu",
    seed: int = JudgeConfig.seed,
    width: int = JudgeConfig.width,
    levels: int = JudgeConfig.levels,
    weight_decay: float = 1e-4,
    map_label: LabelMap | None = None,
) -> tuple[JudgeNet, dict[str, Any]]:
    """Load ``cache_dir/judge-{cache_key}.pt`` (+ ``.json`` sidecar) or train and save it.

    ``cache_key`` should be :func:`config_hash` of the dataset config (and eval mapping). On a
    cache hit the loaders may be None. A sidecar whose judge config differs is an error.
    """
    config = {
        "num_classes": num_classes,
        "ignore_index": ignore_index,
        "steps": steps,
        "lr": lr,
        "seed": seed,
        "width": width,
        "levels": levels,
        "weight_decay": weight_decay,
    }
    cache = Path(cache_dir)
    weights = cache / f"judge-{cache_key}.pt"
    sidecar = cache / f"judge-{cache_key}.json"
    if weights.is_file() and sidecar.is_file():
        meta = json.loads(sidecar.read_text())
        if meta.get("config") != config:
            raise ValueError(
                f"judge cache {sidecar} was trained with {meta.get('config')} but {config} was "
                "requested; delete the cached judge or use another cache key"
            )
        model = JudgeNet(num_classes, width, levels)
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        return model.to(device).eval(), meta["metrics"]
    if train_loader is None or val_loader is None:
        raise ValueError(
            f"no cached judge at {weights} and no train/val loaders to train one; build the "
            "dataset loaders or copy the cached judge there"
        )
    model, report = train_judge(
        train_loader,
        val_loader,
        num_classes,
        ignore_index,
        steps=steps,
        lr=lr,
        device=device,
        seed=seed,
        width=width,
        levels=levels,
        weight_decay=weight_decay,
        map_label=map_label,
    )
    cache.mkdir(parents=True, exist_ok=True)
    with atomic_path(weights) as tmp:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    meta = {"cache_key": cache_key, "config": config, "metrics": report}
    with atomic_path(sidecar) as tmp:
        tmp.write_text(json.dumps(meta, indent=2, sort_keys=True))
    return model, report

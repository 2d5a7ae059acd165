"""Segmentation scores of generated images: confusion matrix, label mappings, segmenters.

The paper's protocol: run a segmentation network on the synthesized images and compare its
prediction with the input label map. Scores come from ONE confusion matrix accumulated over the
whole dataset (not a mean of per-image scores) and are reported in percent.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from spadelab.data.labels import LabelSpec

__all__ = [
    "CITYSCAPES_LABEL_TO_TRAIN_ID",
    "CITYSCAPES_IGNORE",
    "ConfusionMatrix",
    "LabelMapping",
    "Segmenter",
    "TorchScriptSegmenter",
    "available_label_mappings",
    "cityscapes_to_train_ids",
    "get_label_mapping",
    "predict_labels",
    "register_label_mapping",
    "scores_from_confusion",
]


# --------------------------------------------------------------------------------------------
# Confusion matrix
# --------------------------------------------------------------------------------------------


def scores_from_confusion(matrix: Tensor) -> dict[str, Any]:
    """Scores from a (C, C) confusion matrix with rows = target, columns = prediction.

    Classes whose union is empty (never in the target nor in the prediction) are excluded from
    the mean and reported as None in ``per_class_iou``. Values are percentages in [0, 100].
    """
    if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"confusion matrix must be (C, C), got {tuple(matrix.shape)}")
    m = matrix.detach().to("cpu", torch.float64)
    total = float(m.sum())
    if total == 0:
        raise ValueError(
            "no pixels to score: every target pixel was ignored or nothing was accumulated; "
            "check eval_mapping / data.eval_ignore_index"
        )
    tp = torch.diagonal(m)
    union = m.sum(0) + m.sum(1) - tp
    present = union > 0
    iou = torch.where(present, tp / union.clamp(min=1), torch.full_like(tp, math.nan))
    per_class = [None if not bool(p) else 100.0 * float(v) for v, p in zip(iou, present)]
    return {
        "miou": 100.0 * float(iou[present].mean()),
        "accuracy": 100.0 * float(tp.sum()) / total,
        "per_class_iou": per_class,
        "num_classes_present": int(present.sum()),
    }


class ConfusionMatrix:
    """Dataset-level confusion matrix (rows = target, columns = prediction), int64, any device.

    Pixels whose target equals ``ignore_index`` are dropped. Every other target and every
    prediction must lie in ``[0, num_classes)``.
    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes={num_classes} must be >= 1")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def reset(self) -> None:
        self.matrix.zero_()

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor) -> None:
        """``pred``, ``target``: integer (N, H, W) (any equal shapes)."""
        if pred.shape != target.shape:
            raise ValueError(
                f"prediction shape {tuple(pred.shape)} != target shape {tuple(target.shape)}; "
                "resize the logits to the label size before argmax"
            )
        if pred.is_floating_point() or target.is_floating_point():
            raise TypeError("pred and target must be integer class maps (argmax the logits first)")
        pred = pred.reshape(-1).to(self.matrix.device, torch.int64)
        target = target.reshape(-1).to(self.matrix.device, torch.int64)
        if self.ignore_index is not None:
            keep = target != self.ignore_index
            pred, target = pred[keep], target[keep]
        c = self.num_classes
        for name, values in (("target", target), ("prediction", pred)):
            bad = (values < 0) | (values >= c)
            if bool(bad.any()):
                shown = sorted({int(v) for v in values[bad].unique()[:10].tolist()})
                hint = (
                    "set the segmenter's num_classes/label_offset (eval.segmenter.*) to match"
                    if name == "prediction"
                    else "check eval_mapping and data.eval_ignore_index"
                )
                raise ValueError(
                    f"{name} holds class values {shown} outside [0, {c}) "
                    f"(ignore_index={self.ignore_index}); {hint}"
                )
        self.matrix += torch.bincount(target * c + pred, minlength=c * c).reshape(c, c)

    def compute(self) -> dict[str, Any]:
        """``dict(miou, accuracy, per_class_iou, num_classes_present)``, percentages."""
        return scores_from_confusion(self.matrix)


# --------------------------------------------------------------------------------------------
# Label mappings for evaluation
# --------------------------------------------------------------------------------------------

CITYSCAPES_IGNORE = 255

#: Cityscapes label id (the 35 ids of ``labelIds`` PNGs: -1 .. 33) -> train id (0..18, 255 = ignore).
CITYSCAPES_LABEL_TO_TRAIN_ID: dict[int, int] = {
    label_id: CITYSCAPES_IGNORE for label_id in range(-1, 34)
} | {
    7: 0,  # road
    8: 1,  # sidewalk
    11: 2,  # building
    12: 3,  # wall
    13: 4,  # fence
    17: 5,  # pole
    19: 6,  # traffic light
    20: 7,  # traffic sign
    21: 8,  # vegetation
    22: 9,  # terrain
    23: 10,  # sky
    24: 11,  # person
    25: 12,  # rider
    26: 13,  # car
    27: 14,  # truck
    28: 15,  # bus
    31: 16,  # train
    32: 17,  # motorcycle
    33: 18,  # bicycle
}


def cityscapes_to_train_ids(label: Tensor) -> Tensor:
    """Cityscapes label ids -> train ids (int64, same shape). Values outside -1..33 -> 255."""
    lut = torch.tensor(
        [CITYSCAPES_LABEL_TO_TRAIN_ID[i] for i in range(-1, 34)],
        dtype=torch.int64,
        device=label.device,
    )
    label = label.long()
    valid = (label >= -1) & (label <= 33)
    return torch.where(valid, lut[(label + 1).clamp(0, len(lut) - 1)], CITYSCAPES_IGNORE)


@dataclass(frozen=True)
class LabelMapping:
    """How a dataset's label map becomes the label map the segmentation scores compare against.

    ``map`` takes integer labels of any shape and returns int64 labels in ``[0, num_classes)``
    or ``ignore_index``.
    """

    name: str
    num_classes: int
    ignore_index: int | None
    map: Callable[[Tensor], Tensor]

    def __call__(self, label: Tensor) -> Tensor:
        return self.map(label)


def _identity_mapping(spec: LabelSpec) -> LabelMapping:
    """Labels as the dataset gives them: ``data.eval_ignore_index`` and don't-care are ignored.

    Covers ADE20K (151 values, 0 = "other" with eval_ignore_index=0) and COCO-Stuff (182 classes
    + don't-care value 182, which is ignored whether or not eval_ignore_index names it).
    """
    ignore = spec.eval_ignore_index
    dontcare = spec.label_nc if spec.contain_dontcare_label else None
    if ignore is None:
        ignore = dontcare

    def apply(label: Tensor) -> Tensor:
        label = label.long()
        if dontcare is not None and ignore != dontcare:
            label = torch.where(label == dontcare, ignore, label)
        return label

    return LabelMapping("identity", spec.label_nc, ignore, apply)


def _cityscapes_mapping(spec: LabelSpec) -> LabelMapping:
    if spec.label_nc < 34:
        raise ValueError(
            f"eval_mapping=cityscapes_train_ids expects Cityscapes label ids (label_nc >= 34), "
            f"got data.label_nc={spec.label_nc}; use eval_mapping=identity for train-id labels"
        )
    return LabelMapping("cityscapes_train_ids", 19, CITYSCAPES_IGNORE, cityscapes_to_train_ids)


_MAPPINGS: dict[str, Callable[[LabelSpec], LabelMapping]] = {
    "identity": _identity_mapping,
    "cityscapes_train_ids": _cityscapes_mapping,
}


def register_label_mapping(name: str, factory: Callable[[LabelSpec], LabelMapping]) -> None:
    if name in _MAPPINGS:
        raise ValueError(f"eval_mapping {name!r} is already registered")
    _MAPPINGS[name] = factory


def available_label_mappings() -> list[str]:
    return sorted(_MAPPINGS)


def get_label_mapping(name: str, spec: LabelSpec) -> LabelMapping:
    """The mapping registered under the config string ``eval_mapping``."""
    if name not in _MAPPINGS:
        raise ValueError(
            f"eval_mapping={name!r} is unknown; choose one of {available_label_mappings()}"
        )
    return _MAPPINGS[name](spec)


# --------------------------------------------------------------------------------------------
# Segmenters
# --------------------------------------------------------------------------------------------


class Segmenter(Protocol):
    """images (N, 3, H, W) in [-1, 1] -> logits (N, C, h, w)."""

    def __call__(self, images: Tensor) -> Tensor: ...


def predict_labels(
    segmenter: Callable[[Tensor], Tensor], images: Tensor, size: Sequence[int]
) -> Tensor:
    """Argmax of the segmenter's logits, resized (bilinear) to ``size`` first. Returns (N, H, W)."""
    with torch.no_grad():
        logits = segmenter(images)
        if logits.dim() != 4 or logits.shape[0] != images.shape[0]:
            raise ValueError(
                f"segmenter returned shape {tuple(logits.shape)}; expected logits (N, C, h, w) "
                f"for {images.shape[0]} images"
            )
        if tuple(logits.shape[-2:]) != tuple(size):
            logits = F.interpolate(
                logits.float(), size=tuple(size), mode="bilinear", align_corners=False
            )
        return logits.argmax(1)


InputRange = Literal["0_1", "0_255", "-1_1"]


class TorchScriptSegmenter:
    """Adapter for any segmentation network exported with TorchScript (``torch.jit.save``).

    Images in [-1, 1] are rescaled to ``input_range``, normalised with ``mean``/``std`` (given
    in ``input_range`` units; None skips it) and optionally resized to ``input_size`` (h, w).
    The network must return logits (N, num_classes, h, w) (or a dict with ``"out"`` / a tuple
    whose first item is the logits). ``label_offset`` k prepends k never-winning channels, so a
    network predicting classes 0..149 is compared with labels 1..150 (ADE20K).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        num_classes: int,
        mean: Sequence[float] | None = (0.485, 0.456, 0.406),
        std: Sequence[float] | None = (0.229, 0.224, 0.225),
        input_range: InputRange = "0_1",
        label_offset: int = 0,
        input_size: tuple[int, int] | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        if path is None or str(path) == "":
            raise ValueError(
                "eval.segmenter.path is not set; export your segmentation network with "
                "torch.jit.script(model).save('seg.pt') (or torch.jit.trace) and set "
                "eval.segmenter.path=/path/to/seg.pt"
            )
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"eval.segmenter.path={path} does not exist; export the segmenter with "
                "torch.jit.save and point eval.segmenter.path at the file"
            )
        if input_range not in ("0_1", "0_255", "-1_1"):
            raise ValueError(
                f"eval.segmenter.input_range={input_range!r} must be one of '0_1', '0_255', '-1_1'"
            )
        if label_offset < 0:
            raise ValueError(f"eval.segmenter.label_offset={label_offset} must be >= 0")
        if (mean is None) != (std is None):
            raise ValueError(
                "eval.segmenter.mean and eval.segmenter.std must both be set or both None"
            )
        self.device = torch.device(device)
        try:
            with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.x, still works
                warnings.filterwarnings("ignore", message=".*jit.load.*", category=FutureWarning)
                self.model = torch.jit.load(str(path), map_location=self.device)
        except Exception as err:  # torch raises RuntimeError / ValueError / zipfile errors
            raise ValueError(
                f"eval.segmenter.path={path} is not a TorchScript file ({type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''}); export the network with "
                "torch.jit.script(model).save(path) - a state dict or pickled model will not load"
            ) from err
        self.model.eval()
        self.num_classes = num_classes
        self.label_offset = label_offset
        self.input_range = input_range
        self.input_size = tuple(input_size) if input_size is not None else None
        if mean is not None and std is not None:
            self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(
                1, -1, 1, 1
            )
            self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        else:
            self.mean = self.std = None

    @property
    def out_channels(self) -> int:
        return self.num_classes + self.label_offset

    def preprocess(self, images: Tensor) -> Tensor:
        x = images.to(self.device, torch.float32)
        if self.input_range == "0_1":
            x = (x + 1) / 2
        elif self.input_range == "0_255":
            x = (x + 1) * 127.5
        if self.mean is not None and self.std is not None:
            x = (x - self.mean) / self.std
        if self.input_size is not None and tuple(x.shape[-2:]) != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        return x

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        out = self.model(self.preprocess(images))
        if isinstance(out, dict):
            out = out["out"]
        elif isinstance(out, (tuple, list)):
            out = out[0]
        if out.dim() != 4 or out.shape[1] != self.num_classes:
            raise ValueError(
                f"segmenter returned shape {tuple(out.shape)} but eval.segmenter.num_classes="
                f"{self.num_classes}; expected logits (N, {self.num_classes}, h, w)"
            )
        if self.label_offset:
            fill = out.detach().amin() - 1.0
            pad = fill.expand(out.shape[0], self.label_offset, *out.shape[2:])
            out = torch.cat([pad, out], dim=1)
        return out

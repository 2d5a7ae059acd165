"""The paper's evaluation loop: generate from every validation label map, segment, score.

``resolution_mode`` fixes where the comparison happens, since generators may output another size
than the label map: ``"generated"`` scores at the generated size against nearest-resized labels,
``"label"`` upsamples the images (bilinear) to the label size. The mode is part of the result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from spadelab.data.labels import LabelSpec
from spadelab.metrics.fid import fd_from_features
from spadelab.metrics.judge import JudgeSegmenter, config_hash, load_or_train_judge
from spadelab.metrics.segmentation import ConfusionMatrix, get_label_mapping, predict_labels

__all__ = [
    "ResolutionMode",
    "add_style_fidelity",
    "style_fidelity_setting",
    "evaluate_generator",
    "generators_to_score",
    "judge_for",
    "save_png",
    "to_uint8",
]

log = logging.getLogger("spadelab.metrics")

ResolutionMode = Literal["generated", "label"]


def to_uint8(images: Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> uint8 (N, H, W, 3), rounded."""
    x = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def save_png(image: np.ndarray, path: Path) -> None:
    Image.fromarray(image).save(path)


def _resize_images(images: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(images.shape[-2:]) == size:
        return images
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)


def _resize_labels(label: Tensor, size: tuple[int, int]) -> Tensor:
    """(N, H, W) integer labels, nearest neighbour."""
    if tuple(label.shape[-2:]) == size:
        return label
    out = F.interpolate(label[:, None].double(), size=size, mode="nearest")
    return out[:, 0].long()


def _stem(paths: Any, i: int) -> str:
    if isinstance(paths, (list, tuple)) and i < len(paths):
        return Path(str(paths[i])).stem
    return "image"


@torch.no_grad()
def evaluate_generator(
    generate: Callable[[dict[str, Any]], Tensor],
    loader: Iterable[Mapping[str, Any]],
    spec: LabelSpec,
    segmenter: Callable[[Tensor], Tensor],
    eval_mapping: str = "identity",
    resolution_mode: ResolutionMode = "generated",
    out_dir: str | Path | None = None,
    save_real: bool = True,
    judge_features: Callable[[Tensor], Tensor] | None = None,
    max_images: int | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Segmentation scores of generated images over a whole loader; JSON-serialisable result.

    ``generate(batch)`` gets the batch (tensors moved to ``device``) and returns (N, 3, h, w) in
    [-1, 1]. ``segmenter(images)`` returns logits (N, C, h', w'); they are resized to the scoring
    size before argmax. With ``out_dir``, fakes go to ``out_dir/fake`` and the real images,
    resized to the generated size, to ``out_dir/real`` (the FID folders). ``judge_features``
    (images -> (N, D)) adds ``fd_judge`` between fakes and reals at the scoring size.
    """
    if resolution_mode not in ("generated", "label"):
        raise ValueError(
            f"eval.resolution_mode={resolution_mode!r} must be 'generated' or 'label'"
        )
    device = torch.device(device)
    mapping = get_label_mapping(eval_mapping, spec)
    cm = ConfusionMatrix(mapping.num_classes, mapping.ignore_index, device=device)
    fake_dir = real_dir = None
    if out_dir is not None:
        fake_dir = Path(out_dir) / "fake"
        fake_dir.mkdir(parents=True, exist_ok=True)
        if save_real:
            real_dir = Path(out_dir) / "real"
            real_dir.mkdir(parents=True, exist_ok=True)
    fake_feats: list[Tensor] = []
    real_feats: list[Tensor] = []
    generated_sizes: set[tuple[int, int]] = set()
    scored_sizes: set[tuple[int, int]] = set()
    n = 0
    start = time.perf_counter()
    for raw in loader:
        if max_images is not None and n >= max_images:
            break
        batch = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in raw.items()}
        label = batch["label"]
        if label.dim() != 4 or label.shape[1] != 1:
            raise ValueError(f"batch['label'] must be (N, 1, H, W), got {tuple(label.shape)}")
        fake = generate(batch)
        if fake.dim() != 4 or fake.shape[0] != label.shape[0] or fake.shape[1] != 3:
            raise ValueError(
                f"generator returned {tuple(fake.shape)}; expected ({label.shape[0]}, 3, h, w)"
            )
        fake = fake.float().clamp(-1, 1)
        real = batch.get("image")
        if max_images is not None and n + fake.shape[0] > max_images:
            keep = max_images - n
            fake, label = fake[:keep], label[:keep]
            real = real[:keep] if real is not None else None
        gen_size = (int(fake.shape[-2]), int(fake.shape[-1]))
        label_size = (int(label.shape[-2]), int(label.shape[-1]))
        generated_sizes.add(gen_size)

        target = mapping(label[:, 0])
        if resolution_mode == "generated":
            size, images = gen_size, fake
            target = _resize_labels(target, size)
        else:
            size, images = label_size, _resize_images(fake, label_size)
        scored_sizes.add(size)
        cm.update(predict_labels(segmenter, images, size), target)

        if judge_features is not None:
            if real is None:
                raise ValueError("fd_judge needs real images but the batch has no 'image'")
            fake_feats.append(judge_features(images).double().cpu())
            real_feats.append(judge_features(_resize_images(real.float(), size)).double().cpu())

        if fake_dir is not None:
            fakes_u8 = to_uint8(fake)
            reals_u8 = (
                to_uint8(_resize_images(real.float(), gen_size)) if real is not None else None
            )
            for i in range(fake.shape[0]):
                name = f"{n + i:06d}_{_stem(batch.get('path'), i)}.png"
                save_png(fakes_u8[i], fake_dir / name)
                if real_dir is not None and reals_u8 is not None:
                    save_png(reals_u8[i], real_dir / name)
        n += fake.shape[0]

    if n == 0:
        raise ValueError("the evaluation loader yielded no images")
    scores = cm.compute()
    result: dict[str, Any] = {
        "miou": scores["miou"],
        "accuracy": scores["accuracy"],
        "per_class_iou": scores["per_class_iou"],
        "num_classes_present": scores["num_classes_present"],
        "num_images": n,
        "resolution_mode": resolution_mode,
        "eval_mapping": eval_mapping,
        "eval_num_classes": mapping.num_classes,
        "eval_ignore_index": mapping.ignore_index,
        "generated_sizes": sorted([list(s) for s in generated_sizes]),
        "scored_sizes": sorted([list(s) for s in scored_sizes]),
        "seconds": time.perf_counter() - start,
    }
    if judge_features is not None:
        result["fd_judge"] = fd_from_features(torch.cat(fake_feats), torch.cat(real_feats))
    if fake_dir is not None:
        result["fake_dir"] = str(fake_dir)
        result["real_dir"] = str(real_dir) if real_dir is not None else None
    return result


# ---- shared by `spadelab evaluate` and the in-training EvaluationCallback ----------------
def judge_for(datamodule: Any, eval_cfg: Any, device: str) -> tuple[JudgeSegmenter, dict]:
    """The judge for this dataset, trained on its real images once and cached by config hash."""
    from spadelab.data.datamodule import collate  # the datamodule imports Lightning

    spec = datamodule.spec
    mapping = get_label_mapping(datamodule.eval_mapping, spec)
    judge_cfg = dict(eval_cfg["judge"])
    key_source = {
        "dataset": {"name": datamodule.name},
        "image_size": list(datamodule.image_size),
        "label": [spec.label_nc, spec.contain_dontcare_label, datamodule.eval_mapping],
        "judge": judge_cfg,
    }
    datamodule.setup("fit")
    loader_kwargs = {"batch_size": int(judge_cfg["batch_size"]), "collate_fn": collate}
    train_loader = torch.utils.data.DataLoader(datamodule.train_set, shuffle=True, **loader_kwargs)
    val_loader = torch.utils.data.DataLoader(datamodule.val_set, shuffle=False, **loader_kwargs)
    cache_key = config_hash(key_source)
    model, report = load_or_train_judge(
        eval_cfg["cache_dir"],
        cache_key,
        train_loader,
        val_loader,
        num_classes=mapping.num_classes,
        ignore_index=mapping.ignore_index,
        steps=int(judge_cfg["steps"]),
        lr=float(judge_cfg["lr"]),
        device=device,
        seed=int(judge_cfg["seed"]),
        width=int(judge_cfg["width"]),
        levels=int(judge_cfg["levels"]),
        map_label=mapping,
    )
    identity = {
        "cache_key": cache_key,
        "steps": int(judge_cfg["steps"]),
        "seed": int(judge_cfg["seed"]),
    }
    return JudgeSegmenter(model, device), {**report, "identity": identity}


def generators_to_score(module: Any, wanted: list[str]) -> dict[str, bool]:
    names = {}
    if "raw" in wanted:
        names["generator"] = False
    if "ema" in wanted and module.generator_ema is not None:
        names["generator_ema"] = True
    if not names:
        raise ValueError(f"eval.generators={wanted} selects nothing; use [raw] and/or [ema]")
    return names


STYLE_FIDELITY_SETTINGS = ("auto", "true", "false")


def style_fidelity_setting(value: Any, setting: str = "eval.style.fidelity") -> str:
    """``auto`` | ``true`` | ``false`` (YAML booleans included), else one line naming the fix."""
    text = str(value).lower()
    if text not in STYLE_FIDELITY_SETTINGS:
        raise ValueError(f"{setting}={value!r} is not one of auto, true, false")
    return text


def add_style_fidelity(
    results: dict[str, Any],
    module: Any,
    datamodule: Any,
    style_cfg: Mapping[str, Any],
    cache_dir: str,
    device: str,
) -> None:
    """Style fidelity of every generator in ``results``, for runs with an image encoder on data
    with known styles (the synthetic landscapes); nothing otherwise.

    Shared by ``spadelab evaluate`` and the in-training evaluation, so both use the same cached
    style classifier and the same guiding images. ``style_cfg`` is a ``StyleConfig`` mapping.
    """
    setting = style_fidelity_setting(style_cfg.get("fidelity", "auto"))
    styles = getattr(datamodule.val_set, "styles", None)
    if setting == "false" or module.encoder is None or not styles:
        if setting == "true":
            raise ValueError(
                "eval.style.fidelity=true needs a run trained with encoder=vae on a dataset with "
                "known styles (data=synthetic); use eval.style.fidelity=auto"
            )
        return
    from spadelab.data.datamodule import collate  # the datamodule imports Lightning
    from spadelab.metrics.style import (
        MissingStyleError,
        load_or_train_style_classifier,
        style_fidelity,
    )

    loader_kwargs = {"batch_size": int(style_cfg["batch_size"]), "collate_fn": collate}
    generator = torch.Generator().manual_seed(int(style_cfg["seed"]))
    key = config_hash(
        {
            "dataset": datamodule.name,
            "image_size": list(datamodule.image_size),
            "train": len(datamodule.train_set),
            "val": len(datamodule.val_set),
        }
    )
    classifier, report = load_or_train_style_classifier(
        cache_dir,
        key,
        torch.utils.data.DataLoader(
            datamodule.train_set, shuffle=True, generator=generator, **loader_kwargs
        ),
        torch.utils.data.DataLoader(datamodule.val_set, shuffle=False, **loader_kwargs),
        num_styles=len(styles),
        steps=int(style_cfg["steps"]),
        lr=float(style_cfg["lr"]),
        seed=int(style_cfg["seed"]),
        width=int(style_cfg["width"]),
        device=device,
    )
    results["style_classifier"] = {
        "ceiling_accuracy": report["val_accuracy"],
        "styles": list(styles),
    }
    for name in ("generator", "generator_ema"):
        if name not in results:
            continue
        use_ema = name == "generator_ema"
        try:
            scores = style_fidelity(
                lambda batch, guide, use_ema=use_ema: module.synthesize(
                    batch, use_ema=use_ema, style_image=guide
                ),
                datamodule.val_dataloader(),
                classifier,
                len(styles),
                max_images=style_cfg.get("max_images"),
                device=device,
            )
        except MissingStyleError as error:
            results["style_classifier"]["status"] = f"skipped: {error}"
            log.warning("style fidelity skipped: %s", error)
            return
        results[name].update(scores)

"""``spadelab evaluate``: the paper's protocol on a trained run.

Every validation label map is synthesized (by the raw generator and by its EMA when the run has
one); a segmenter labels the generated images and mIoU / pixel accuracy compare that with the
input label maps over the whole split. The project's judge also yields ``fd_judge`` (a Fréchet
distance on its features, never called FID). FID/KID need the Inception weights file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from spadelab.checkpoints import find_checkpoint, load_checkpoint, run_dir_of
from spadelab.config import CONF_DIR
from spadelab.loggers import log_run_evaluation
from spadelab.metrics.judge import config_hash
from spadelab.metrics.protocol import (
    add_style_fidelity,
    evaluate_generator,
    generators_to_score,
    judge_for,
)
from spadelab.runtime import run_command, write_json

log = logging.getLogger("spadelab.evaluate")


def build_segmenter(datamodule: Any, eval_cfg: Any, device: str) -> tuple[Any, dict]:
    segmenter_cfg = eval_cfg["segmenter"]
    if segmenter_cfg in (None, "judge"):
        segmenter, report = judge_for(datamodule, eval_cfg, device)
        ceiling = {
            "miou": report.get("val_miou"),
            "accuracy": report.get("val_accuracy"),
            "num_images": report.get("num_val_images"),
        }
        return segmenter, {
            "segmenter": "judge",
            "judge_ceiling": ceiling,
            "judge": {**report["identity"], "ceiling_miou": ceiling["miou"]},
        }
    segmenter = instantiate(segmenter_cfg)
    return segmenter, {"segmenter": str(OmegaConf.select(segmenter_cfg, "path", default="?"))}


def with_run_judge_steps(eval_cfg: Any, run_cfg: dict[str, Any]) -> DictConfig:
    """``eval.judge.steps: null`` means the run's own ``scale.judge_steps``.

    The in-sweep evaluation and the in-training callback use the scale's judge, so a
    standalone ``spadelab evaluate`` of the same run must too, or the two disagree.
    """
    eval_cfg = OmegaConf.create(OmegaConf.to_container(eval_cfg, resolve=True))
    if eval_cfg.get("segmenter") in (None, "judge") and eval_cfg.judge.get("steps") is None:
        steps = (run_cfg.get("scale") or {}).get("judge_steps")
        if steps is None:
            raise ValueError(
                "eval.judge.steps=null takes the run's scale.judge_steps, but the checkpoint's "
                "config has none; pass eval.judge.steps=N"
            )
        eval_cfg.judge.steps = int(steps)
    return eval_cfg


def fid_for(fake_dir: str, real_dir: str, eval_cfg: Any, cache_key: str) -> dict[str, Any]:
    weights = eval_cfg.get("inception_weights")
    if not weights:
        return {
            "fid_status": "skipped: no Inception weights (set eval.inception_weights or "
            "SPADELAB_INCEPTION_WEIGHTS to the pt_inception-2015-12-05 file)"
        }
    from spadelab.metrics.fid import InceptionFeatures, compute_fid_kid

    extractor = InceptionFeatures(weights)
    result = compute_fid_kid(
        fake_dir,
        real_dir,
        extractor,
        cache_dir=Path(eval_cfg["cache_dir"]) / "fid",
        cache_key=cache_key,
        kid_subset_size=int(eval_cfg["kid_subset_size"]),
    )
    return {"fid": result["fid"], "kid": result["kid_mean"], "kid_std": result["kid_std"]}


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    from spadelab.runtime import check_unknown_keys, resolve_device

    check_unknown_keys(cfg)  # eval.* typos, + keys included, fail before any work
    resolve_device(str(cfg.device))  # one line for device=cuda without a GPU, or a typo
    torch.manual_seed(int(cfg.seed))
    ckpt = find_checkpoint(cfg.ckpt)
    module = load_checkpoint(ckpt, map_location=cfg.device).to(cfg.device)
    data_cfg = cfg.get("data") or OmegaConf.create(module.cfg["data"])
    datamodule = instantiate(data_cfg, val_batch_size=int(cfg.eval.batch_size))
    if datamodule.spec.semantic_nc != module.spec.semantic_nc:
        raise ValueError(
            f"data={datamodule.name} gives {datamodule.spec.semantic_nc} label channels but the "
            f"checkpoint's generator expects {module.spec.semantic_nc}; evaluate on the dataset "
            "the model was trained on"
        )
    run_dir = run_dir_of(ckpt)
    # A run's own metrics.json is written only by its own evaluation (no out_dir): an
    # evaluation elsewhere, e.g. on other data, must never replace a finished table row.
    own_evaluation = not cfg.out_dir
    out_dir = Path(cfg.out_dir) if cfg.out_dir else run_dir / "eval"
    eval_cfg = with_run_judge_steps(cfg.eval, module.cfg)
    segmenter, segmenter_info = build_segmenter(datamodule, eval_cfg, cfg.device)
    datamodule.setup("validate")
    if module.generator_ema is not None:
        module.recalibrate_ema_norms(
            batch for _, batch in zip(range(20), datamodule.train_dataloader())
        )
    results: dict[str, Any] = {
        "checkpoint": str(ckpt),
        "epoch": module.checkpoint_meta.get("epoch"),
        "global_step": module.checkpoint_meta.get("global_step"),
        "data": datamodule.name,
        "scale": module.cfg.get("scale", {}).get("name"),
        "image_size": list(datamodule.image_size),
        "generator_params": sum(p.numel() for p in module.generator.parameters()),
        "resolution_mode": cfg.eval.resolution_mode,
        **segmenter_info,
    }
    fid_key = config_hash({"data": datamodule.name, "size": list(datamodule.image_size)})
    for name, use_ema in generators_to_score(module, list(cfg.eval.generators)).items():
        scores = evaluate_generator(
            lambda batch, use_ema=use_ema: module.synthesize(batch, use_ema=use_ema),
            datamodule.val_dataloader(),
            datamodule.spec,
            segmenter,
            eval_mapping=datamodule.eval_mapping,
            resolution_mode=cfg.eval.resolution_mode,
            out_dir=out_dir / name,
            judge_features=getattr(segmenter, "features", None),
            max_images=cfg.eval.max_images,
            device=cfg.device,
        )
        scores.pop("per_class_iou", None)
        scores.update(fid_for(scores["fake_dir"], scores["real_dir"], cfg.eval, fid_key))
        results[name] = scores
    add_style_fidelity(
        results, module, datamodule, eval_cfg.get("style") or {}, eval_cfg["cache_dir"], cfg.device
    )
    write_json(out_dir / "metrics.json", results)
    if own_evaluation:
        write_json(run_dir / "metrics.json", results)
        # Into the loggers the run was trained with (TensorBoard HParams, wandb summary).
        log_run_evaluation(run_dir, module.cfg, results)
    print(format_results(results))
    return results


def format_results(results: dict[str, Any]) -> str:
    rows = [name for name in ("generator", "generator_ema") if name in results]
    lines = [
        f"evaluation of {results['checkpoint']} on {results['data']} "
        f"({results['image_size'][0]}x{results['image_size'][1]}, segmenter: "
        f"{results['segmenter']}, resolution: {results['resolution_mode']})",
        "| generator | mIoU | accuracy | fd_judge | FID |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in rows:
        r = results[name]
        fid = f"{r['fid']:.2f}" if "fid" in r else "skipped"
        fd = f"{r['fd_judge']:.2f}" if r.get("fd_judge") is not None else "-"
        lines.append(f"| {name} | {r['miou']:.1f} | {r['accuracy']:.1f} | {fd} | {fid} |")
    ceiling = results.get("judge_ceiling")
    if ceiling:
        lines.append(
            f"| real images (judge ceiling) | {ceiling['miou']:.1f} | "
            f"{ceiling['accuracy']:.1f} | 0 | - |"
        )
    status = next((results[n].get("fid_status") for n in rows if "fid_status" in results[n]), None)
    if status:
        lines.append(f"FID {status}")
    if "style_classifier" in results:
        scored = ", ".join(
            f"{n} {results[n]['style_fidelity']:.1f}%"
            for n in rows
            if "style_fidelity" in results[n]
        )
        lines.append(
            f"style fidelity (guided image classified as its style): {scored}; chance "
            f"{100 / len(results['style_classifier']['styles']):.0f}%, classifier ceiling on real "
            f"images {results['style_classifier']['ceiling_accuracy']:.1f}%"
        )
    return "\n".join(lines)


@hydra.main(config_path=str(CONF_DIR), config_name="evaluate", version_base="1.3")
def hydra_main(cfg: DictConfig) -> Any:
    return run_command("evaluate", evaluate, cfg)


def main() -> Any:
    """``spadelab evaluate``: typo'd keys (plain or ``+``) fail in one line before Hydra starts."""
    import sys

    from spadelab.runtime import check_overrides

    check_overrides("evaluate", "evaluate", sys.argv[1:])
    return hydra_main()


if __name__ == "__main__":
    main()

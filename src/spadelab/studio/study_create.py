"""``spadelab study create``: synthesize A and B on the same validation label maps, write the DB.

The study dir holds ``labels/NNN.png`` (the colourised label map shown to raters),
``a/NNN.png`` and ``b/NNN.png`` (the two methods' images) and ``study.sqlite``. With ``b=real``
B is the dataset's real photo, which measures how often raters take A for real.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from PIL import Image

from spadelab.builders import image_size
from spadelab.checkpoints import load_checkpoint
from spadelab.config import compose_config
from spadelab.data.labels import colorize
from spadelab.data.transforms import tensor_to_uint8
from spadelab.module import SemanticSynthesis
from spadelab.studio.study_db import create_database

QUESTION = (
    "Which image looks more realistic and corresponds better to the label map? "
    "(SPADE paper, Sec. 4: raters see the label map and two outputs and pick one)"
)


def study_data(run: SemanticSynthesis, data: str | None, data_overrides: list[str]):
    """The datamodule whose validation label maps the study uses (default: run A's data)."""
    if data is None and not data_overrides:
        return instantiate(run.cfg["data"])
    overrides = [f"data={data}"] if data is not None else []
    cfg = compose_config("train", ["run_dir=.", *overrides, *data_overrides])
    return instantiate(cfg.data)


def synthesize_all(
    module: SemanticSynthesis, labels: torch.Tensor, instances: torch.Tensor, seed: int
) -> list[np.ndarray]:
    """Images of one run for every label map, at the run's own size, with the EMA generator."""
    height, width = image_size(module.cfg["data"])
    if labels.shape[-2:] != (height, width):
        labels = F.interpolate(labels.float(), size=(height, width), mode="nearest").long()
        instances = F.interpolate(instances.float(), size=(height, width), mode="nearest").long()
    chunks = [
        {"label": labels[i : i + 16], "instance": instances[i : i + 16]}
        for i in range(0, len(labels), 16)
    ]
    if module.generator_ema is not None:
        # As in `spadelab synthesize`: the EMA weights need their own norm statistics.
        module.recalibrate_ema_norms(chunks)
    torch.manual_seed(seed)
    images = []
    for chunk in chunks:
        fake = module.synthesize(chunk, use_ema=True)
        images += [tensor_to_uint8(f) for f in fake]
    return images


def create(
    a: str,
    b: str,
    out: str,
    n: int = 100,
    data: str | None = None,
    data_overrides: list[str] | None = None,
    seed: int = 0,
    device: str = "cpu",
    a_name: str | None = None,
    b_name: str | None = None,
    show_label: bool = True,
) -> dict[str, Any]:
    if n < 1:
        raise ValueError(f"n={n} must be >= 1 (the number of pairs)")
    out_dir = Path(out).expanduser().resolve()
    if (out_dir / "study.sqlite").exists():
        raise ValueError(f"out={out_dir} already holds a study; pick a new out=")
    run_a = load_checkpoint(a, map_location=device)
    run_b = None if b == "real" else load_checkpoint(b, map_location=device)
    if run_b is not None and run_b.spec != run_a.spec:
        raise ValueError(
            f"a={a} and b={b} use different label layouts ({run_a.spec} vs {run_b.spec}); "
            "compare runs trained on the same dataset"
        )
    datamodule = study_data(run_a, data, list(data_overrides or []))
    datamodule.setup("validate")
    val_set = datamodule.val_set
    if len(val_set) < n:
        print(f"[study] the validation split has {len(val_set)} maps; using all of them (n={n})")
        n = len(val_set)
    samples = [val_set[i] for i in range(n)]
    labels = torch.stack([s["label"] for s in samples])
    instances = torch.stack([s["instance"] for s in samples])
    images_a = synthesize_all(run_a, labels.to(device), instances.to(device), seed)
    if run_b is None:
        images_b = [tensor_to_uint8(s["image"]) for s in samples]
    else:
        images_b = synthesize_all(run_b, labels.to(device), instances.to(device), seed)
    for sub in ("labels", "a", "b"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    palette = datamodule.palette
    pairs = []
    for i, sample in enumerate(samples):
        name = f"{i:03d}.png"
        Image.fromarray(colorize(sample["label"][0], palette)).save(out_dir / "labels" / name)
        Image.fromarray(images_a[i]).save(out_dir / "a" / name)
        Image.fromarray(images_b[i]).save(out_dir / "b" / name)
        pairs.append((i, f"labels/{name}", f"a/{name}", f"b/{name}"))
    meta = {
        "a": str(Path(a).expanduser().resolve()),
        "b": b if b == "real" else str(Path(b).expanduser().resolve()),
        "a_name": a_name or Path(a).name,
        "b_name": b_name or ("real" if b == "real" else Path(b).name),
        "dataset": datamodule.name,
        "n": n,
        "seed": seed,
        "question": QUESTION,
        "show_label": "true" if show_label else "false",
        # Per-study secret: left/right layouts differ between studies, stable within one.
        "secret": secrets.token_hex(8),
    }
    db = create_database(out_dir, meta, pairs)
    print(f"[study] {n} pairs in {out_dir} ({db.name}); serve with `spadelab study serve {out}`")
    return {"study_dir": str(out_dir), "pairs": n}

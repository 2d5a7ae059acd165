"""``spadelab synthesize``: label maps in, images out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig
from PIL import Image, UnidentifiedImageError

from spadelab.builders import image_size
from spadelab.config import CONF_DIR
from spadelab.data.labels import check_label_range
from spadelab.data.transforms import image_to_tensor, map_to_tensor, tensor_to_uint8
from spadelab.module import load_checkpoint
from spadelab.runtime import run_command

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _inputs(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"input={path} holds no label images (.png)")
        return files
    if not path.is_file():
        raise FileNotFoundError(f"input={path} does not exist; pass a label PNG or a folder")
    return [path]


def _open(path: Path, setting: str) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
        return image
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"{setting}={path} is not a readable image: {error}") from error


def load_label(path: Path, size: tuple[int, int], spec) -> torch.Tensor:
    image = _open(path, "input")
    if image.mode not in ("L", "P", "I", "I;16"):
        raise ValueError(
            f"input={path} is a {image.mode} image; label maps are single-channel PNGs of class "
            "indices (mode L/P/I)"
        )
    height, width = size
    label = map_to_tensor(image.resize((width, height), Image.Resampling.NEAREST))
    check_label_range(label, spec, source=str(path))
    return label


def load_style(path: Path, size: tuple[int, int]) -> torch.Tensor:
    image = _open(path, "style").convert("RGB")
    height, width = size
    return image_to_tensor(image.resize((width, height), Image.Resampling.BICUBIC))


def _batch(path: Path, cfg: DictConfig, size: tuple[int, int], spec) -> dict[str, torch.Tensor]:
    label = load_label(path, size, spec).unsqueeze(0)
    batch = {"label": label, "instance": torch.zeros_like(label)}
    if cfg.instance is not None:
        instance_path = Path(cfg.instance)
        if instance_path.is_dir():
            instance_path = instance_path / f"{path.stem}.png"
        instance = _open(instance_path, "instance")
        batch["instance"] = map_to_tensor(
            instance.resize((size[1], size[0]), Image.Resampling.NEAREST)
        ).unsqueeze(0)
    return {k: v.to(cfg.device) for k, v in batch.items()}


def synthesize(cfg: DictConfig) -> dict[str, Any]:
    module = load_checkpoint(cfg.ckpt, map_location=cfg.device)
    size = image_size(module.cfg["data"])
    out_dir = Path(cfg.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    generator, _ = module.sampling_generator() if cfg.use_ema else (module.generator, None)
    n_samples = int(cfg.n_samples)
    if n_samples < 1:
        raise ValueError(f"n_samples={n_samples} must be >= 1")
    uses_noise = generator.input.value == "noise" if hasattr(generator, "input") else False
    if n_samples > 1 and not uses_noise and cfg.style is None:
        raise ValueError(
            "n_samples > 1 needs a generator with random input (model.generator.input=noise "
            "or encoder=vae); this one is deterministic given the label map"
        )
    style = None
    if cfg.style is not None:
        style = load_style(Path(cfg.style), size).unsqueeze(0).to(cfg.device)
    torch.manual_seed(int(cfg.seed))
    paths = _inputs(Path(cfg.input))
    batches = [_batch(path, cfg, size, module.spec) for path in paths]
    if cfg.use_ema and module.generator_ema is not None:
        # The EMA copy's norm statistics belong to the live weights; re-estimate them on the
        # label maps at hand (random z stands in for a VAE's encoding).
        # Batches of up to 16 maps so the statistics include the spread between samples.
        chunks = [batches[i : i + 16] for i in range(0, len(batches), 16)]
        module.recalibrate_ema_norms(
            {key: torch.cat([b[key] for b in chunk]) for key in ("label", "instance")}
            for chunk in chunks
        )
    written = []
    for path, batch in zip(paths, batches):
        for k in range(n_samples):
            fake = module.synthesize(batch, use_ema=bool(cfg.use_ema), style_image=style)
            name = f"{path.stem}.png" if n_samples == 1 else f"{path.stem}_{k:02d}.png"
            Image.fromarray(tensor_to_uint8(fake[0])).save(out_dir / name)
            written.append(str(out_dir / name))
    print(f"wrote {len(written)} image(s) to {out_dir}")
    return {"images": written}


@hydra.main(config_path=str(CONF_DIR), config_name="synthesize", version_base="1.3")
def main(cfg: DictConfig) -> Any:
    return run_command("synthesize", synthesize, cfg)


if __name__ == "__main__":
    main()

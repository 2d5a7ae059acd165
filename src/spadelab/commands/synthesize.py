"""``spadelab synthesize``: label maps in, images out."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig
from PIL import Image, UnidentifiedImageError

from spadelab.builders import image_size
from spadelab.checkpoints import load_checkpoint
from spadelab.config import CONF_DIR
from spadelab.data.labels import check_label_range
from spadelab.data.transforms import image_to_tensor, map_to_tensor, tensor_to_uint8
from spadelab.nets.generators import draws_noise
from spadelab.runtime import check_overrides, check_unknown_keys, resolve_device, run_command

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


def _load_one(path: Path, cfg: DictConfig, size: tuple[int, int], spec) -> dict[str, torch.Tensor]:
    label = load_label(path, size, spec)
    sample = {"label": label, "instance": torch.zeros_like(label)}
    if cfg.instance is not None:
        instance_path = Path(cfg.instance)
        if instance_path.is_dir():
            instance_path = instance_path / f"{path.stem}.png"
        instance = _open(instance_path, "instance")
        sample["instance"] = map_to_tensor(
            instance.resize((size[1], size[0]), Image.Resampling.NEAREST)
        )
    return sample


def _stack(samples: list[dict[str, torch.Tensor]], device: str) -> dict[str, torch.Tensor]:
    return {key: torch.stack([s[key] for s in samples]).to(device) for key in samples[0]}


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    """Consecutive chunks of ``size``; a last chunk of one joins the previous one, because
    norm recalibration in training mode needs more than one value per channel."""
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        chunks[-2] += chunks.pop()
    return chunks


def _autocast(device: str, precision: str) -> Any:
    if precision in ("32", "32-true", "fp32"):
        return contextlib.nullcontext()
    if precision in ("bf16", "bf16-mixed"):
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    raise ValueError(f"precision={precision} is not supported; use 32 or bf16")


def synthesize(cfg: DictConfig) -> dict[str, Any]:
    check_unknown_keys(cfg)  # +key=value typos
    device = resolve_device(str(cfg.device))
    precision = str(cfg.precision)
    autocast = _autocast(device, precision)  # checked before the checkpoint is read
    batch_size = int(cfg.batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    n_samples = int(cfg.n_samples)
    if n_samples < 1:
        raise ValueError(f"n_samples={n_samples} must be >= 1")
    paths = _inputs(Path(cfg.input))
    module = load_checkpoint(cfg.ckpt, map_location=device)
    size = image_size(module.cfg["data"])
    generator, encoder = module.sampling_generator() if cfg.use_ema else (module.generator, None)
    if cfg.style is not None and module.encoder is None:
        raise ValueError(
            "style= needs a model trained with encoder=vae; this checkpoint has no encoder"
        )
    uses_noise = draws_noise(generator)
    if n_samples > 1 and not uses_noise and cfg.style is None:
        raise ValueError(
            "n_samples > 1 needs a generator with random input (model.generator.input_kind=noise "
            "or encoder=vae); this one is deterministic given the label map"
        )
    style = None
    if cfg.style is not None:
        style = load_style(Path(cfg.style), size).unsqueeze(0).to(device)
    out_dir = Path(cfg.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(int(cfg.seed))
    samples = [_load_one(path, cfg, size, module.spec) for path in paths]
    use_ema = bool(cfg.use_ema) and module.generator_ema is not None
    if use_ema and len(samples) > 1:
        # The EMA copy's norm statistics belong to the live weights; re-estimate them on the
        # label maps at hand (random z stands in for a VAE's encoding), in batches of up to 16
        # so the statistics include the spread between samples. A single map cannot give
        # batch statistics: the statistics stored with the EMA weights are used then.
        module.recalibrate_ema_norms(_stack(chunk, device) for chunk in _chunks(samples, 16))
    written = []
    pairs = list(zip(paths, samples))
    for chunk in (pairs[i : i + batch_size] for i in range(0, len(pairs), batch_size)):
        batch = _stack([sample for _, sample in chunk], device)
        batch_style = style.expand(len(chunk), -1, -1, -1) if style is not None else None
        for k in range(n_samples):
            with autocast:
                fake = module.synthesize(batch, use_ema=use_ema, style_image=batch_style)
            for (path, _), image in zip(chunk, fake.float()):
                name = f"{path.stem}.png" if n_samples == 1 else f"{path.stem}_{k:02d}.png"
                Image.fromarray(tensor_to_uint8(image)).save(out_dir / name)
                written.append(str(out_dir / name))
    print(f"wrote {len(written)} image(s) to {out_dir}")
    return {"images": written}


@hydra.main(config_path=str(CONF_DIR), config_name="synthesize", version_base="1.3")
def hydra_main(cfg: DictConfig) -> Any:
    return run_command("synthesize", synthesize, cfg)


def main() -> Any:
    """``spadelab synthesize``: typo'd keys fail in one line before Hydra starts."""
    check_overrides("synthesize", "synthesize", sys.argv[1:])
    return hydra_main()


if __name__ == "__main__":
    main()

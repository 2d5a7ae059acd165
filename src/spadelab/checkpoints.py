"""Checkpoints: where a setting's checkpoint is, how it is read, and whether it fits a config.

Every command that takes a checkpoint (``ckpt=`` of evaluate / synthesize / studio,
``ckpt_path=`` of train, ``out=`` of import-official) finds it here, so a run dir means the
same file everywhere: ``<run_dir>/checkpoints/last.ckpt`` (or ``<dir>/last.ckpt``).
Files are read with ``torch.load(weights_only=True)``: a checkpoint is data, never code.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spadelab.config import same_section, upgrade_saved_config
from spadelab.runtime import ConfigError

if TYPE_CHECKING:
    from spadelab.module import SemanticSynthesis

# Config groups whose change makes a checkpoint's state dict belong to another network.
ARCHITECTURE_KEYS = ("model", "norm", "modulation", "encoder")
# data.* keys that set the generator's input channels and geometry (the rest is loading).
DATA_ARCHITECTURE_KEYS = ("label_nc", "contain_dontcare_label", "use_instance", "crop_size")


def find_checkpoint(path: str | os.PathLike[str], setting: str = "ckpt") -> Path:
    """A .ckpt file, or a run dir (its ``checkpoints/last.ckpt``, else its ``last.ckpt``).

    ``setting`` is the command's key (``ckpt`` or ``ckpt_path``), named in the error.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        for candidate in (path / "checkpoints" / "last.ckpt", path / "last.ckpt"):
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(
            f"{setting}={path} is a directory without checkpoints/last.ckpt; pass a run dir of "
            "`spadelab train` or a .ckpt file"
        )
    if not path.is_file():
        raise FileNotFoundError(
            f"{setting}={path} does not exist; pass a run dir of `spadelab train` or a .ckpt file"
        )
    return path


def resume_checkpoint(ckpt_path: str | None, run_dir: Path) -> Path | None:
    """``spadelab train``'s ``ckpt_path``: ``None`` (start fresh), ``auto`` (resume ``run_dir``
    when it has a last.ckpt, else start fresh), ``last`` (resume ``run_dir``, which must have
    one), a run dir or a .ckpt file."""
    if ckpt_path in (None, "", "null"):
        return None
    last = run_dir / "checkpoints" / "last.ckpt"
    if ckpt_path == "auto":
        return last if last.is_file() else None
    if ckpt_path == "last":
        if not last.is_file():
            raise FileNotFoundError(
                f"ckpt_path=last: {run_dir} has no checkpoints/last.ckpt to resume; use "
                "ckpt_path=auto to start fresh when there is none"
            )
        return last
    return find_checkpoint(str(ckpt_path), "ckpt_path")


def output_paths(out: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``(checkpoint file, run dir)`` for a checkpoint to write: ``*.ckpt`` is the file itself;
    a folder gets ``checkpoints/last.ckpt``, where :func:`find_checkpoint` looks for it."""
    out = Path(out).expanduser()
    if out.suffix == ".ckpt":
        return out, out.parent
    return out / "checkpoints" / "last.ckpt", out


def run_dir_of(checkpoint: Path) -> Path:
    """The run dir that holds ``checkpoint`` (the inverse of :func:`output_paths`)."""
    return (
        checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    )


def load_torch_file(path: str | os.PathLike[str], setting: str) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` with one clear line for every unreadable file."""
    import torch

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as error:
        raise ValueError(f"{setting}={path} cannot be read: {error.strerror or error}") from None
    if size == 0:
        raise ValueError(f"{setting}={path} is empty (0 bytes); pass a complete checkpoint")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as error:
        raise ValueError(f"{setting}={path} cannot be read: {error.strerror or error}") from None
    except Exception as error:  # noqa: BLE001 - every torch/pickle failure means "unreadable"
        text = str(error)
        if "Weights only load failed" in text or "GLOBAL" in text:
            # Never repeat torch's advice to retry with weights_only=False: that runs the code.
            reason = "it holds Python objects other than tensors (refused: loading could run code)"
        elif isinstance(error, EOFError) or "central directory" in text or "zip" in text:
            reason = "it is truncated or not a torch checkpoint"
        else:
            reason = text.splitlines()[0] if text.strip() else type(error).__name__
        raise ValueError(f"{setting}={path} is not a readable checkpoint: {reason}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{setting}={path} is not a Lightning checkpoint (no dict inside)")
    return data


def check_finite_weights(state_dict: Mapping[str, Any], source: str) -> None:
    """Refuse weights with NaN/inf: images from them are black and metrics meaningless."""
    import torch

    bad = [
        key
        for key, value in state_dict.items()
        if torch.is_tensor(value) and value.is_floating_point() and not torch.isfinite(value).all()
    ]
    if bad:
        raise ValueError(
            f"{source} holds non-finite weights ({len(bad)} tensors, e.g. {bad[0]}): the run "
            "diverged; use an earlier checkpoint or retrain with a lower optim.lr_g/lr_d"
        )


def read_checkpoint(path: Path, setting: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(checkpoint, its training config)`` of a spadelab checkpoint with finite weights; the
    config in today's keys when an older spadelab saved it (``config.upgrade_saved_config``)."""
    checkpoint = load_torch_file(path, setting)  # one line for empty/truncated/unsafe files
    cfg = (checkpoint.get("hyper_parameters") or {}).get("cfg")
    if not isinstance(cfg, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"{setting}={path} is not a spadelab checkpoint (no stored config)")
    check_finite_weights(checkpoint["state_dict"], f"{setting}={path}")  # a diverged run
    return checkpoint, upgrade_saved_config(cfg)


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str = "cpu", setting: str = "ckpt"
) -> SemanticSynthesis:
    """Rebuild the module from the config stored in a checkpoint and load its weights.

    The VGG loss is switched off: inference never needs it (nor its weights file).
    """
    from spadelab.module import SemanticSynthesis  # Lightning and the nets: only when loading

    path = find_checkpoint(path, setting)
    checkpoint, cfg = read_checkpoint(path, setting)
    cfg = copy.deepcopy(cfg)
    cfg["loss"]["lambda_vgg"] = 0.0
    module = SemanticSynthesis(cfg)
    missing, unexpected = module.load_state_dict(checkpoint["state_dict"], strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{setting}={path} does not match its own config: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    module.checkpoint_path = str(path)
    module.checkpoint_meta = {
        "epoch": checkpoint.get("epoch"),
        "global_step": checkpoint.get("global_step"),
    }
    # Moved whole, EMA copy included (it is a submodule): device=cuda synthesizes on the GPU.
    return module.to(map_location).eval()


def architecture_differences(saved: Mapping[str, Any], cfg: Mapping[str, Any]) -> list[str]:
    """The settings in which two training configs build different networks (``saved`` read
    back through ``read_checkpoint``: in today's keys, its groups maybe without ``name``)."""
    differences = [
        key for key in ARCHITECTURE_KEYS if not same_section(saved.get(key), cfg.get(key))
    ]
    saved_data, data = saved.get("data") or {}, cfg.get("data") or {}
    differences += [
        f"data.{key}" for key in DATA_ARCHITECTURE_KEYS if saved_data.get(key) != data.get(key)
    ]
    return differences


def check_checkpoint_matches(checkpoint: Path, cfg: Mapping[str, Any]) -> None:
    """Refuse to resume ``checkpoint`` under a config that builds another network."""
    _, saved_cfg = read_checkpoint(checkpoint, "ckpt_path")
    differences = architecture_differences(saved_cfg, cfg)
    if differences:
        raise ConfigError(
            f"checkpoint {checkpoint} was trained with a different {', '.join(differences)}; "
            "use the same config overrides as that run, or start without ckpt_path"
        )

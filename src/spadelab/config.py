"""Where the Hydra configs live and how code outside ``@hydra.main`` composes them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = Path(os.environ.get("SPADELAB_CONF", REPO_ROOT / "conf")).resolve()


def compose_config(config_name: str = "train", overrides: Sequence[str] = ()) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with Hydra overrides, outside a Hydra app."""
    if not CONF_DIR.is_dir():
        raise FileNotFoundError(
            f"config directory {CONF_DIR} not found; run from a spadelab checkout or set "
            "SPADELAB_CONF to its conf/ folder"
        )
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides))

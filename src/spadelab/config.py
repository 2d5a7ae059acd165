"""Where the Hydra configs live, how code outside ``@hydra.main`` composes them, and the
schemas of the plain (``_target_``-less) config sections."""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

REPO_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = Path(os.environ.get("SPADELAB_CONF", REPO_ROOT / "conf")).resolve()


def fit_crop_size(base: int, aspect_ratio: float) -> int:
    """The crop size whose image height (crop / aspect) is still ``base``.

    Small scales fix the shorter side: Cityscapes (aspect 2) at smoke scale is 32x64, whose
    height survives the generator's 2^5 downsampling, where a crop of 32 gave 16x32.
    """
    return int(math.ceil(int(base) * max(1.0, float(aspect_ratio))))


def slurm_gpus(accelerator: str, devices: Any) -> Any:
    """GPUs per node to request from Slurm: none on a CPU partition (``trainer.accelerator=cpu``),
    where a GPU request is unsatisfiable, else one per ``trainer.devices`` process."""
    return None if str(accelerator) == "cpu" else devices


OmegaConf.register_new_resolver("spadelab.fit_crop", fit_crop_size, replace=True)
OmegaConf.register_new_resolver("spadelab.slurm_gpus", slurm_gpus, replace=True)


def compose_config(
    config_name: str = "train", overrides: Sequence[str] = (), *, with_hydra: bool = False
) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with Hydra overrides, outside a Hydra app.

    ``with_hydra`` keeps the ``hydra`` node (launcher, group choices), which a sweep reads.
    """
    if not CONF_DIR.is_dir():
        raise FileNotFoundError(
            f"config directory {CONF_DIR} not found; run from a spadelab checkout or set "
            "SPADELAB_CONF to its conf/ folder"
        )
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(
            config_name=config_name, overrides=list(overrides), return_hydra_config=with_hydra
        )


def override_value(value: str, setting: str) -> str:
    """``value`` (a path) as one Hydra override value: as is when plain, else quoted, so that
    spaces, commas and '=' survive Hydra's override grammar. ``setting`` is named in the error."""
    if re.fullmatch(r"[\w/.:+-]+", value):
        return value
    # Inside quotes Hydra reads a backslash before the closing quote as an escape.
    for quote in ("'", '"'):
        if quote not in value and not value.endswith("\\"):
            return f"{quote}{value}{quote}"
    raise ValueError(
        f"{setting}={value} holds both quote characters or ends in a backslash, which a Hydra "
        "override cannot carry; use a plainer path"
    )


# ---- config groups' names, and training configs saved by older versions --------------------
# Every config group's file states its own choice (``name: <file stem>``), so logs, dashboards and
# start lines read it from the config a run dir or checkpoint carries, not by splitting
# ``_target_``. encoder=none is the exception: ``encoder: null`` is how every consumer tests "no
# encoder" (see conf/encoder/none.yaml), and :func:`group_name` reads it as "none".
NAMED_GROUPS = (
    "model",
    "data",
    "scale",
    "norm",
    "modulation",
    "encoder",
    "loss",
    "optim",
    "perf",
    "trainer",
    "logger",
    "callbacks",
)

# Keys renamed since configs were first saved: old dotted key -> new (same parent node).
# Saved configs are upgraded on reading (:func:`upgrade_saved_config`); given today, the old key
# fails in one line naming the new one (:func:`renamed_key_message`).
RENAMED_KEYS = {
    # ``input`` shadowed the builtin in the generators' signatures (values: segmap | noise).
    "model.generator.input": "model.generator.input_kind",
}


def renamed_key_message(key: str) -> str | None:
    """The one-line error for a key that was renamed (``key`` dotted, without ``+``/``~``)."""
    new = RENAMED_KEYS.get(key)
    if new is None:
        return None
    return f"{key} was renamed {new}; write {new}=... instead (e.g. {new}=noise)"


def without_name(node: Any) -> Any:
    """A config group's node without its ``name``, ready for ``instantiate``.

    The name says which file was chosen; Hydra would pass it to the ``_target_`` as an argument.
    DictConfigs are resolved first (a copy cut from its root could not resolve ``${scale.ngf}``).
    """
    if isinstance(node, DictConfig):
        node = OmegaConf.to_container(node, resolve=True)
    if not isinstance(node, Mapping) or "name" not in node:
        return node
    return {key: value for key, value in node.items() if key != "name"}


def group_components(node: Any) -> Iterator[Any]:
    """The components of a group that is a dict of them (``logger``, ``callbacks``): every
    entry but the group's ``name`` and those switched off with ``null`` (``callbacks.samples``)."""
    for key, value in (node or {}).items():
        if key != "name" and value:
            yield value


def group_name(cfg: Mapping[str, Any], group: str) -> str | None:
    """The chosen file of ``group`` in a composed config: its ``name``; ``none`` for the null
    encoder; ``None`` when a config saved before groups had names lacks it."""
    node = cfg.get(group)
    if node is None:
        return "none" if group == "encoder" else None
    name = node.get("name") if isinstance(node, Mapping) else None
    return None if name is None else str(name)


def upgrade_saved_config(cfg: Mapping[str, Any] | DictConfig) -> dict[str, Any]:
    """A training config saved by an older spadelab (checkpoint, run dir's config.yaml) in
    today's keys: each of :data:`RENAMED_KEYS` moved to its new name, in place in its node.

    Groups saved before they had names stay without one: :func:`same_section` then leaves the
    name out of comparisons, and :mod:`spadelab.loggers` derives it from ``_target_``.
    """
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=False)
    upgraded = copy.deepcopy(dict(cfg))
    for old, new in RENAMED_KEYS.items():
        *parents, leaf = old.split(".")
        new_leaf = new.rsplit(".", 1)[-1]
        node: Any = upgraded
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node and new_leaf not in node:
            items = [(new_leaf if key == leaf else key, value) for key, value in node.items()]
            node.clear()
            node.update(items)  # the same order: a saved config reads as before
    return upgraded


def same_section(saved: Any, current: Any) -> bool:
    """Whether a saved config's section equals today's; a ``name`` the saved section lacks (it
    was saved before groups had names) is left out, so older run dirs and checkpoints match."""
    if isinstance(saved, Mapping) and isinstance(current, Mapping) and "name" not in saved:
        current = {key: value for key, value in current.items() if key != "name"}
    return saved == current


# ---- schemas of the plain sections (checked by spadelab.runtime.check_unknown_keys) ----------
@dataclass
class LossConfig:
    name: str = "default"
    gan_mode: str = "hinge"
    lambda_feat: float = 10.0
    lambda_vgg: float = 10.0
    lambda_kld: float = 0.05
    vgg_weights: str | None = None
    vgg_normalize_input: bool = False
    vgg_layer_weights: list[float] = field(
        default_factory=lambda: [0.03125, 0.0625, 0.125, 0.25, 1.0]
    )
    # The OASIS discriminator's objective (model=oasis | spade_oasis_d set them).
    lambda_labelmix: float = 0.0
    class_balance: str = "batch"  # batch | dataset | none
    class_stats_cache: str | None = None


@dataclass
class OptimConfig:
    name: str = "ttur"
    lr_g: float = 1.0e-4
    lr_d: float = 4.0e-4
    beta1: float = 0.0
    beta2: float = 0.9
    decay_start_epoch: float = 100.0


@dataclass
class EmaConfig:
    enabled: bool = False
    half_life_images: float = 10_000.0
    rampup: float | None = 0.05
    decay: float | None = None


@dataclass
class ScaleConfig:
    name: str = "cpu"
    ngf: int = 16
    spade_hidden: int = 32
    ndf: int = 32
    encoder_input_size: int = 64
    max_epochs: int = 5
    decay_start_epoch: int = 3
    log_every_n_steps: int = 10
    sample_every_n_steps: int = 250
    judge_steps: int = 800
    checkpoint_every_n_epochs: int = 5
    notes: str = ""


@dataclass
class JudgeConfig:
    steps: int | None = None
    batch_size: int = 16
    lr: float = 2.0e-3
    width: int = 16
    levels: int = 4
    seed: int = 0


@dataclass
class StyleConfig:
    fidelity: str = "auto"  # auto: scored when the run has an encoder and the data has styles
    steps: int = 400
    batch_size: int = 16
    lr: float = 2.0e-3
    width: int = 16
    seed: int = 0
    max_images: int | None = 64


@dataclass
class EvalConfig:
    segmenter: Any = "judge"
    resolution_mode: str = "generated"
    max_images: int | None = None
    batch_size: int = 16
    generators: list[str] = field(default_factory=lambda: ["raw", "ema"])
    inception_weights: str | None = None
    kid_subset_size: int = 1000
    cache_dir: str = "."
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    style: StyleConfig = field(default_factory=StyleConfig)


@dataclass
class ExperimentConfig:
    table: str | None = None
    row: str | None = None
    group: str | None = None
    run_name: str | None = None
    tags: list[str] = field(default_factory=list)


# The judge's and the style classifier's settings have one home each, JudgeConfig and
# StyleConfig: conf/evaluate.yaml takes its defaults from here (``- /schema/judge@eval.judge``,
# ``- /schema/style@eval.style``) and the in-training EvaluationCallback builds both. Stored
# as a plain dict: check_unknown_keys checks keys and types with the valid keys listed, where a
# typed node would fail inside Hydra with "Error merging override".
ConfigStore.instance().store(group="schema", name="judge", node=dataclasses.asdict(JudgeConfig()))
ConfigStore.instance().store(group="schema", name="style", node=dataclasses.asdict(StyleConfig()))

SECTION_SCHEMAS: dict[str, type] = {
    "loss": LossConfig,
    "optim": OptimConfig,
    "ema": EmaConfig,
    "scale": ScaleConfig,
    "eval": EvalConfig,
    "experiment": ExperimentConfig,
}


def _top_level_keys(name: str) -> frozenset[str]:
    """A config file's own keys and config groups, plus those a group or a sweep adds."""
    path = CONF_DIR / f"{name}.yaml"
    if not path.is_file():
        return frozenset()
    config = yaml.safe_load(path.read_text()) or {}
    groups = set()
    for entry in config.get("defaults", []):
        if isinstance(entry, dict):
            # "override /norm", "optional encoder/generator": the group's first folder.
            groups.update(str(key).split()[-1].lstrip("/").split("/")[0] for key in entry)
    own = {key for key in config if key not in ("defaults", "hydra")}
    # sweep: added by spadelab sweep to the configs of its rows.
    extra = {"sweep"} if name == "train" else set()
    return frozenset(groups | own | extra)


TOP_LEVEL_KEYS = {name: _top_level_keys(name) for name in ("train", "evaluate", "synthesize")}


def config_name(cfg: Any) -> str | None:
    """Which entry point's config ``cfg`` is, from keys only that one has."""
    if "run_dir" in cfg and "model" in cfg:
        return "train"
    if "input" in cfg and "ckpt" in cfg:
        return "synthesize"
    if "eval" in cfg and "ckpt" in cfg:
        return "evaluate"
    return None

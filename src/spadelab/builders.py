"""Build networks from a composed config (model + norm + modulation + data geometry)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch.nn as nn
from hydra.utils import instantiate

from spadelab.config import without_name
from spadelab.data.labels import LabelSpec
from spadelab.data.transforms import PairedTransform
from spadelab.nets.blocks import init_weights
from spadelab.nets.build import make_norm_layer


def label_spec(data_cfg: Mapping[str, Any]) -> LabelSpec:
    return LabelSpec(
        int(data_cfg["label_nc"]),
        bool(data_cfg.get("contain_dontcare_label", False)),
        bool(data_cfg.get("use_instance", False)),
        data_cfg.get("eval_ignore_index"),
    )


def image_size(data_cfg: Mapping[str, Any]) -> tuple[int, int]:
    """(height, width) of generated images, from the data config alone (no dataset): the
    datamodule's own transform computes it (``SemanticDataModule.image_size``)."""
    return PairedTransform(
        data_cfg.get("preprocess_mode", "resize_and_crop"),
        data_cfg.get("load_size"),
        int(data_cfg["crop_size"]),
        float(data_cfg.get("aspect_ratio", 1.0)),
    ).image_size


def build_generator(cfg: Mapping[str, Any]) -> nn.Module:
    spec = label_spec(cfg["data"])
    norm_layer = make_norm_layer(
        instantiate(without_name(cfg["modulation"])),
        instantiate(without_name(cfg["norm"])),
        spec.semantic_nc,
    )
    generator = instantiate(
        cfg["model"]["generator"],
        semantic_nc=spec.semantic_nc,
        image_size=image_size(cfg["data"]),
        norm_layer=norm_layer,
    )
    init_weights(generator, cfg["model"].get("init_gain", 0.02))
    return generator


def build_discriminator(cfg: Mapping[str, Any]) -> nn.Module:
    spec = label_spec(cfg["data"])
    discriminator = instantiate(cfg["model"]["discriminator"], semantic_nc=spec.semantic_nc)
    init_weights(discriminator, cfg["model"].get("init_gain", 0.02))
    return discriminator


def build_encoder(cfg: Mapping[str, Any]) -> nn.Module | None:
    if cfg.get("encoder") is None:
        return None
    encoder = instantiate(without_name(cfg["encoder"]))
    init_weights(encoder, cfg["model"].get("init_gain", 0.02))
    return encoder

"""Compose a norm layer from the ``modulation`` and ``norm`` groups."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch.nn as nn

from spadelab.nets.blocks import NormLayer


def make_norm_layer(
    modulation: Callable[..., nn.Module],
    param_free_norm: Callable[[int], nn.Module],
    label_nc: int,
) -> NormLayer:
    """``modulation(param_free_norm(C), label_map)`` as a factory of channels (and site).

    Blocks name the site of each norm (``block_input`` or ``inner``); a modulation that takes
    a ``site`` argument (``Concat``) may inject the label map at some sites only.
    """
    takes_site = "site" in inspect.signature(modulation).parameters

    def norm_layer(num_features: int, site: str = "inner", extra_label_nc: int = 0) -> nn.Module:
        # extra_label_nc: channels a generator concatenates to the label map before its norms
        # (OASIS's 3D noise), so the modulation sees label_nc + extra_label_nc channels.
        extra = {"site": site} if takes_site else {}
        return modulation(
            num_features=num_features,
            label_nc=label_nc + extra_label_nc,
            param_free_norm=param_free_norm,
            **extra,
        )

    return norm_layer


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

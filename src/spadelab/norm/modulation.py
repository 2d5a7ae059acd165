"""How the label map enters a normalization layer: the ``modulation`` axis.

A norm layer is ``modulation(param_free_norm(C), label_map)``. Every modulation has the same
constructor, ``(num_features, label_nc, param_free_norm)``, and the same call,
``(x, label_map)``, so a generator never knows which one it holds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import Enum

import torch
import torch.nn as nn
import torch.nn.functional as F

ParamFreeNorm = Callable[[int], nn.Module]


class LabelEncoding(str, Enum):
    onehot = "onehot"
    # The "scalar label" SPADE variant: one channel of class indices instead of L one-hot
    # channels. Indices are scaled to [0, 1] so the conv sees the same range at any label_nc.
    index = "index"


def encode_labels(label_map: torch.Tensor, encoding: LabelEncoding) -> torch.Tensor:
    if encoding is LabelEncoding.onehot:
        return label_map
    # argmax returns the first maximum, so a set instance-edge channel (the last one) never
    # wins over the class channel of a valid one-hot map.
    index = label_map.argmax(dim=1, keepdim=True).float()
    return index / max(label_map.shape[1] - 1, 1)


def _resize_to(label_map: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    if label_map.shape[-2:] == x.shape[-2:]:
        return label_map
    return F.interpolate(label_map, size=x.shape[-2:], mode="nearest")


class SPADE(nn.Module):
    """Spatially-adaptive normalization (Park et al. 2019, eq. 1).

    ``out = param_free_norm(x) * (1 + gamma) + beta`` with gamma, beta predicted per pixel from
    the label map resized (nearest) to the activation, through a shared conv + ReLU.
    Attribute names follow the official code so its checkpoints load unchanged.
    """

    def __init__(
        self,
        num_features: int,
        label_nc: int,
        param_free_norm: ParamFreeNorm,
        hidden_channels: int = 128,
        kernel_size: int = 3,
        label_encoding: str = "onehot",
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"modulation.kernel_size={kernel_size} must be odd (1, 3, 5...)")
        self.num_features = num_features
        self.label_encoding = LabelEncoding(label_encoding)
        in_channels = label_nc if self.label_encoding is LabelEncoding.onehot else 1
        padding = kernel_size // 2
        self.param_free_norm = param_free_norm(num_features)
        self.mlp_shared = nn.Sequential(
            nn.Conv2d(in_channels, hidden_channels, kernel_size, padding=padding), nn.ReLU()
        )
        self.mlp_gamma = nn.Conv2d(hidden_channels, num_features, kernel_size, padding=padding)
        self.mlp_beta = nn.Conv2d(hidden_channels, num_features, kernel_size, padding=padding)

    def forward(self, x: torch.Tensor, label_map: torch.Tensor) -> torch.Tensor:
        assert x.shape[1] == self.num_features, (
            f"SPADE expects {self.num_features} channels, got {x.shape[1]}"
        )
        normalized = self.param_free_norm(x)
        actv = self.mlp_shared(_resize_to(encode_labels(label_map, self.label_encoding), x))
        return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class Affine(nn.Module):
    """Unconditional normalization with a learned per-channel affine (pix2pixHD style)."""

    def __init__(self, num_features: int, label_nc: int, param_free_norm: ParamFreeNorm) -> None:
        super().__init__()
        self.num_features = num_features
        self.param_free_norm = param_free_norm(num_features)
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor, label_map: torch.Tensor | None = None) -> torch.Tensor:
        shape = (1, -1, 1, 1)
        return self.param_free_norm(x) * self.weight.view(shape) + self.bias.view(shape)


class ParamFree(nn.Module):
    """The param-free norm alone, no learned affine: pix2pixHD's ``InstanceNorm2d(affine=False)``."""

    def __init__(self, num_features: int, label_nc: int, param_free_norm: ParamFreeNorm) -> None:
        super().__init__()
        self.num_features = num_features
        self.param_free_norm = param_free_norm(num_features)

    def forward(self, x: torch.Tensor, label_map: torch.Tensor | None = None) -> torch.Tensor:
        return self.param_free_norm(x)


class Site(str, Enum):
    """Where a norm layer sits in its block: lets a modulation inject the label map sparsely."""

    block_input = "block_input"  # the first norm of a block (and its shortcut's norm)
    inner = "inner"  # a later norm inside a block


class Concat(nn.Module):
    """The paper's "w/ Concat" baseline: the label map is concatenated, not used to modulate.

    At a site in ``sites``: ``conv([x, resize(label_map)])`` then the param-free norm, with a
    learned per-channel affine when ``affine``. Elsewhere the layer is the param-free norm
    (+ affine) alone. The conv keeps the channel count, so the layer is a drop-in for SPADE.
    The paper does not give the exact form, so its parts are fields:

    - ``sites: [block_input, inner]`` (default) re-injects the label map at every norm;
      ``[block_input]`` injects it once per block, the sparser reading of "concatenated to
      the input of every intermediate layer" (pix2pixHD++ w/ Concat then lands at the
      paper's 195M; see ``spadelab params``);
    - ``kernel_size`` of that conv; ``affine``: the per-channel scale and bias after the norm.
    """

    def __init__(
        self,
        num_features: int,
        label_nc: int,
        param_free_norm: ParamFreeNorm,
        kernel_size: int = 1,
        label_encoding: str = "onehot",
        sites: Sequence[str] = ("block_input", "inner"),
        affine: bool = True,
        site: str = "inner",
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"modulation.kernel_size={kernel_size} must be odd (1, 3, 5...)")
        try:
            chosen = {Site(v) for v in sites}
        except ValueError:
            raise ValueError(
                f"modulation.sites={list(sites)}: each must be one of {[s.value for s in Site]}"
            ) from None
        if not chosen:
            raise ValueError(
                "modulation.sites=[] injects the label map nowhere; use modulation=affine"
            )
        self.num_features = num_features
        self.label_encoding = LabelEncoding(label_encoding)
        self.injects = Site(site) in chosen
        in_labels = label_nc if self.label_encoding is LabelEncoding.onehot else 1
        if self.injects:
            self.conv = nn.Conv2d(
                num_features + in_labels, num_features, kernel_size, padding=kernel_size // 2
            )
        if affine:
            self.affine = Affine(num_features, label_nc, param_free_norm)
        else:
            self.param_free_norm = param_free_norm(num_features)

    def forward(self, x: torch.Tensor, label_map: torch.Tensor) -> torch.Tensor:
        if self.injects:
            labels = _resize_to(encode_labels(label_map, self.label_encoding), x)
            x = self.conv(torch.cat([x, labels], dim=1))
        if hasattr(self, "affine"):
            return self.affine(x)
        return self.param_free_norm(x)

"""Building blocks shared by the generators."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

# A label-conditioned norm layer factory: (channels, site) -> module called as
# ``layer(x, label_map)``. The site ("block_input" or "inner") says where the norm sits.
NormLayer = Callable[[int, str], nn.Module]


def spectral(module: nn.Module, enabled: bool) -> nn.Module:
    # The hook-based spectral_norm keeps the official parameter names (weight_orig, weight_u,
    # weight_v), so official checkpoints load without renaming.
    return nn.utils.spectral_norm(module) if enabled else module


def leaky_relu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


class SPADEResBlock(nn.Module):
    """The SPADE residual block (paper Fig. 11): two norm-act-conv units and a shortcut.

    The shortcut is a learned, bias-free 1x1 conv after its own norm layer when the channel
    count changes. Spectral norm applies to the convs only, never to the norm layers' convs.
    """

    def __init__(self, fin: int, fout: int, norm_layer: NormLayer, spectral_norm: bool) -> None:
        super().__init__()
        self.in_channels, self.out_channels = fin, fout
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        self.conv_0 = spectral(nn.Conv2d(fin, fmiddle, 3, padding=1), spectral_norm)
        self.conv_1 = spectral(nn.Conv2d(fmiddle, fout, 3, padding=1), spectral_norm)
        if self.learned_shortcut:
            self.conv_s = spectral(nn.Conv2d(fin, fout, 1, bias=False), spectral_norm)
        self.norm_0 = norm_layer(fin, "block_input")
        self.norm_1 = norm_layer(fmiddle, "inner")
        if self.learned_shortcut:
            self.norm_s = norm_layer(fin, "block_input")

    def forward(self, x: torch.Tensor, label_map: torch.Tensor) -> torch.Tensor:
        assert x.shape[1] == self.in_channels, (
            f"block expects {self.in_channels} channels, got {x.shape[1]}"
        )
        shortcut = self.conv_s(self.norm_s(x, label_map)) if self.learned_shortcut else x
        dx = self.conv_0(leaky_relu(self.norm_0(x, label_map)))
        dx = self.conv_1(leaky_relu(self.norm_1(dx, label_map)))
        return shortcut + dx


class ConvNormAct(nn.Module):
    """conv -> label-conditioned norm -> activation: one pix2pixHD layer."""

    def __init__(
        self,
        conv: nn.Module,
        out_channels: int,
        norm_layer: NormLayer,
        spectral_norm: bool,
        pad: int = 0,
    ) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(pad) if pad else nn.Identity()
        self.conv = spectral(conv, spectral_norm)
        self.norm = norm_layer(out_channels, "block_input")

    def forward(self, x: torch.Tensor, label_map: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(self.pad(x)), label_map))


class ResnetBlock(nn.Module):
    """pix2pixHD residual block with label-conditioned norms (reflection padding, ReLU)."""

    def __init__(
        self,
        dim: int,
        norm_layer: NormLayer,
        spectral_norm: bool,
        kernel_size: int = 3,
        conv_bias: bool = False,
    ) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.pad = nn.ReflectionPad2d(pad)
        self.conv_0 = spectral(nn.Conv2d(dim, dim, kernel_size, bias=conv_bias), spectral_norm)
        self.norm_0 = norm_layer(dim, "block_input")
        self.conv_1 = spectral(nn.Conv2d(dim, dim, kernel_size, bias=conv_bias), spectral_norm)
        self.norm_1 = norm_layer(dim, "inner")

    def forward(self, x: torch.Tensor, label_map: torch.Tensor) -> torch.Tensor:
        dx = F.relu(self.norm_0(self.conv_0(self.pad(x)), label_map))
        dx = self.norm_1(self.conv_1(self.pad(dx)), label_map)
        return x + dx


def init_weights(net: nn.Module, gain: float = 0.02) -> None:
    """The official SPADE initialization: Xavier-normal (gain 0.02), zero biases.

    Spectral-normalized convs are initialized through ``weight_orig``: in the official code the
    freshly hooked ``weight`` attribute aliases that storage, so it receives the same init.
    """
    for module in net.modules():
        name = type(module).__name__
        if "BatchNorm2d" in name:
            if getattr(module, "weight", None) is not None:
                nn.init.normal_(module.weight, 1.0, gain)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
        elif "Conv" in name or "Linear" in name:
            weight = module._parameters.get("weight")
            if weight is None:
                weight = module._parameters.get("weight_orig")
            if weight is not None:
                nn.init.xavier_normal_(weight, gain=gain)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

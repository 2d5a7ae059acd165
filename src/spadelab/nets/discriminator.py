"""The multi-scale PatchGAN discriminator of pix2pixHD, as used by SPADE.

Input: the label map concatenated with an image. Output: for each scale, the list of every
layer's features, the last being the patch logits (the intermediate ones feed feature matching).
Module names follow the official code (discriminator_0.model0 ...).
"""

from __future__ import annotations

from enum import Enum

import torch
import torch.nn as nn
import torch.nn.functional as F

from spadelab.nets.blocks import spectral


class DiscriminatorNorm(str, Enum):
    instance = "instance"
    batch = "batch"
    none = "none"


def _norm_conv(conv: nn.Conv2d, norm: DiscriminatorNorm, spectral_norm: bool) -> nn.Module:
    """conv (+ spectral norm) (+ norm): the official ``get_nonspade_norm_layer``."""
    if norm is DiscriminatorNorm.none:
        return spectral(conv, spectral_norm)
    # A bias right before a normalization is cancelled by it; the official code drops it.
    conv = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        bias=False,
    )
    conv = spectral(conv, spectral_norm)
    if norm is DiscriminatorNorm.instance:
        return nn.Sequential(conv, nn.InstanceNorm2d(conv.out_channels, affine=False))
    return nn.Sequential(conv, nn.BatchNorm2d(conv.out_channels, affine=True))


class NLayerDiscriminator(nn.Module):
    def __init__(
        self,
        input_nc: int,
        ndf: int = 64,
        n_layers: int = 4,
        norm: str = "instance",
        spectral_norm: bool = True,
    ) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"model.discriminator.n_layers={n_layers} must be >= 1")
        norm_kind = DiscriminatorNorm(norm)
        kw, padw = 4, 2
        nf = ndf
        sequence = [[nn.Conv2d(input_nc, nf, kw, stride=2, padding=padw), nn.LeakyReLU(0.2)]]
        for n in range(1, n_layers):
            nf_prev, nf = nf, min(nf * 2, 512)
            stride = 1 if n == n_layers - 1 else 2
            conv = nn.Conv2d(nf_prev, nf, kw, stride=stride, padding=padw)
            sequence.append([_norm_conv(conv, norm_kind, spectral_norm), nn.LeakyReLU(0.2)])
        sequence.append([nn.Conv2d(nf, 1, kw, stride=1, padding=padw)])
        for n, layers in enumerate(sequence):
            self.add_module(f"model{n}", nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for layer in self.children():
            x = layer(x)
            features.append(x)
        return features


class MultiscaleDiscriminator(nn.Module):
    def __init__(
        self,
        semantic_nc: int,
        ndf: int = 64,
        n_layers: int = 4,
        num_D: int = 2,
        norm: str = "instance",
        spectral_norm: bool = True,
    ) -> None:
        super().__init__()
        if num_D < 1:
            raise ValueError(f"model.discriminator.num_D={num_D} must be >= 1")
        self.input_nc = semantic_nc + 3
        for i in range(num_D):
            self.add_module(
                f"discriminator_{i}",
                NLayerDiscriminator(self.input_nc, ndf, n_layers, norm, spectral_norm),
            )

    def forward(self, label_map: torch.Tensor, image: torch.Tensor) -> list[list[torch.Tensor]]:
        x = torch.cat([label_map, image], dim=1)
        outputs = []
        for i, discriminator in enumerate(self.children()):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(discriminator(x))
        return outputs

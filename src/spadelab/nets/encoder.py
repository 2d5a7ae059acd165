"""The VAE image encoder of SPADE: an image's style as (mu, logvar) of a Gaussian over z."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from spadelab.nets.blocks import spectral


class ConvEncoder(nn.Module):
    """Stride-2 3x3 convs (spectral norm + instance norm) then two linear heads.

    The official code resizes every image to 256x256 and uses 6 convs down to 4x4;
    ``input_size`` keeps that default and lets small-scale runs encode at their own size
    (log2(input_size / 4) convs).
    """

    def __init__(
        self, ngf: int = 64, z_dim: int = 256, input_size: int = 256, spectral_norm: bool = True
    ) -> None:
        super().__init__()
        num_layers = int(round(math.log2(input_size / 4))) if input_size >= 8 else 0
        if input_size < 8 or 4 * 2**num_layers != input_size:
            raise ValueError(
                f"encoder.input_size={input_size} (scale.encoder_input_size) must be a power of "
                "two >= 8"
            )
        self.input_size = input_size
        self.z_dim = z_dim
        channels = [3] + [ngf * min(2**i, 8) for i in range(num_layers)]
        for i, (cin, cout) in enumerate(zip(channels[:-1], channels[1:]), start=1):
            conv = spectral(
                nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), spectral_norm
            )
            self.add_module(f"layer{i}", nn.Sequential(conv, nn.InstanceNorm2d(cout)))
        self.num_layers = num_layers
        self.fc_mu = nn.Linear(channels[-1] * 16, z_dim)
        self.fc_var = nn.Linear(channels[-1] * 16, z_dim)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if image.shape[-2:] != (self.input_size, self.input_size):
            image = F.interpolate(image, size=(self.input_size, self.input_size), mode="bilinear")
        x = image
        for i in range(1, self.num_layers + 1):
            x = getattr(self, f"layer{i}")(x if i == 1 else F.leaky_relu(x, 0.2))
        x = F.leaky_relu(x, 0.2).flatten(1)
        return self.fc_mu(x), self.fc_var(x)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

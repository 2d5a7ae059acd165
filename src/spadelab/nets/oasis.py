"""OASIS (Schönfeld et al., "You Only Need Adversarial Supervision for Semantic Image
Synthesis", ICLR 2021): its generator with 3D noise and its segmentation discriminator.

- The generator is the SPADE decoder with six res-blocks (SPADE has seven: no ``G_middle_1``)
  and, with ``noise_3d``, a z of ``z_dim`` channels broadcast over the label map and
  concatenated to it, at the input conv and at every norm layer, so one label map gives many
  images.
- The discriminator is a U-Net that labels every pixel with one of the N classes or "fake"
  (class N): its loss is in ``spadelab.losses`` (``oasis_d_loss``, ``labelmix_loss``).

Module names follow the official code (``body``, ``fc``, ``conv_img``; ``body_down``,
``body_up``, ``layer_up_last``), so parameter counts compare one to one.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from spadelab.nets.blocks import NormLayer, SPADEResBlock, leaky_relu, spectral
from spadelab.nets.generators import GeneratorInput, scaled_width
from spadelab.norm.clade import CLADE
from spadelab.norm.modulation import SPADE, Concat, LabelEncoding

# Widths of the six blocks in units of ngf (official ``channels``: 16, 16, 16, 8, 4, 2, 1).
GENERATOR_WIDTHS = (16, 16, 16, 8, 4, 2, 1)


class OASISGenerator(nn.Module):
    def __init__(
        self,
        semantic_nc: int,
        image_size: tuple[int, int],
        norm_layer: NormLayer,
        ngf: int = 64,
        width_multiplier: float = 1.0,
        z_dim: int = 64,
        noise_3d: bool = True,
        spectral_norm: bool = True,
    ) -> None:
        super().__init__()
        ngf = scaled_width(ngf, width_multiplier)
        if z_dim < 1:
            raise ValueError(f"model.generator.z_dim={z_dim} must be >= 1")
        self.semantic_nc = semantic_nc
        self.z_dim = z_dim
        self.noise_3d = noise_3d
        # The 3D noise is the generator's random input: samples and synthesize draw z for it.
        self.input_kind = GeneratorInput.noise if noise_3d else GeneratorInput.segmap
        num_up = len(GENERATOR_WIDTHS) - 2
        height, width = image_size
        if height % 2**num_up or width % 2**num_up:
            raise ValueError(
                f"image size {height}x{width} is not divisible by 2^{num_up} (the OASIS "
                "generator's upsamplings); change data.crop_size / data.aspect_ratio"
            )
        self.sh, self.sw = height // 2**num_up, width // 2**num_up
        extra = z_dim if noise_3d else 0
        widths = [w * ngf for w in GENERATOR_WIDTHS]

        def wide_norm(channels: int, site: str = "inner") -> nn.Module:
            return norm_layer(channels, site, extra)

        self.body = nn.ModuleList(
            SPADEResBlock(fin, fout, wide_norm, spectral_norm)
            for fin, fout in zip(widths[:-1], widths[1:])
        )
        self._check_modulation(self.body[0].norm_0)
        self.fc = nn.Conv2d(semantic_nc + extra, widths[0], 3, padding=1)
        self.conv_img = nn.Conv2d(widths[-1], 3, 3, padding=1)

    def _check_modulation(self, layer: nn.Module) -> None:
        if not self.noise_3d:
            return
        if isinstance(layer, CLADE):
            raise ValueError(
                "model.generator.noise_3d=true concatenates noise to the label map, which "
                "modulation=clade cannot look up per class; set model.generator.noise_3d=false"
            )
        if isinstance(layer, (SPADE, Concat)) and layer.label_encoding is LabelEncoding.index:
            raise ValueError(
                "model.generator.noise_3d=true needs modulation.label_encoding=onehot (class "
                "indices cannot carry the noise channels)"
            )

    def forward(self, label_map: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        assert label_map.shape[1] == self.semantic_nc, (
            f"generator expects {self.semantic_nc} label channels, got {label_map.shape[1]}"
        )
        seg = label_map
        if self.noise_3d:
            n, _, h, w = label_map.shape
            if z is None:
                z = torch.randn(n, self.z_dim, device=label_map.device, dtype=label_map.dtype)
            assert z.shape == (n, self.z_dim), f"z must be ({n}, {self.z_dim}), got {z.shape}"
            # Official order: noise channels first, then the label map.
            seg = torch.cat([z.view(n, self.z_dim, 1, 1).expand(n, self.z_dim, h, w), seg], 1)
        x = self.fc(F.interpolate(seg, size=(self.sh, self.sw), mode="nearest"))
        for i, block in enumerate(self.body):
            x = block(x, seg)
            if i < len(self.body) - 1:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
        return torch.tanh(self.conv_img(leaky_relu(x)))


class OASISResBlockD(nn.Module):
    """The official ``residual_block_D``: (act, [up], conv) x 2 + a 1x1 shortcut, then pool."""

    def __init__(
        self, fin: int, fout: int, direction: int, spectral_norm: bool, first: bool = False
    ) -> None:
        super().__init__()
        self.direction, self.first = direction, first
        self.learned_shortcut = fin != fout
        conv1 = spectral(nn.Conv2d(fin, fout, 3, 1, 1), spectral_norm)
        if first:
            self.conv1 = nn.Sequential(conv1)
        elif direction > 0:
            self.conv1 = nn.Sequential(nn.LeakyReLU(0.2), nn.Upsample(scale_factor=2), conv1)
        else:
            self.conv1 = nn.Sequential(nn.LeakyReLU(0.2), conv1)
        self.conv2 = nn.Sequential(
            nn.LeakyReLU(0.2), spectral(nn.Conv2d(fout, fout, 3, 1, 1), spectral_norm)
        )
        if self.learned_shortcut:
            self.conv_s = spectral(nn.Conv2d(fin, fout, 1, 1, 0), spectral_norm)

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        if self.direction > 0:
            return F.interpolate(x, scale_factor=2, mode="nearest")
        return F.avg_pool2d(x, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        # Official order: the first block pools before its 1x1 conv, the others after.
        if self.first or self.direction > 0:
            shortcut = self._resample(shortcut)
        if self.learned_shortcut:
            shortcut = self.conv_s(shortcut)
        if not self.first and self.direction < 0:
            shortcut = self._resample(shortcut)
        dx = self.conv2(self.conv1(x))
        if self.direction < 0:
            dx = F.avg_pool2d(dx, 2)
        return shortcut + dx


class OASISDiscriminator(nn.Module):
    """U-Net segmentation discriminator: image (N, 3, H, W) -> logits (N, semantic_nc+1, H, W).

    Class ``semantic_nc`` is "fake". It does not see the label map: it has to segment the image,
    which is the supervision the generator gets back. ``ndf`` 64 gives the official widths
    (128, 128, 256, 256, 512, 512; last decoder block 64).
    """

    def __init__(
        self,
        semantic_nc: int,
        ndf: int = 64,
        num_res_blocks: int = 6,
        spectral_norm: bool = True,
    ) -> None:
        super().__init__()
        if num_res_blocks < 2:
            raise ValueError(f"model.discriminator.num_res_blocks={num_res_blocks} must be >= 2")
        if ndf < 1:
            raise ValueError(f"model.discriminator.ndf={ndf} must be >= 1")
        self.semantic_nc = semantic_nc
        self.num_res_blocks = num_res_blocks
        multipliers = [2, 2, 4, 4, 8, 8]
        multipliers += [8] * (num_res_blocks - len(multipliers))
        channels = [3] + [m * ndf for m in multipliers[:num_res_blocks]]
        self.body_down = nn.ModuleList(
            OASISResBlockD(channels[i], channels[i + 1], -1, spectral_norm, first=i == 0)
            for i in range(num_res_blocks)
        )
        up = [OASISResBlockD(channels[-1], channels[-2], 1, spectral_norm)]
        for i in range(1, num_res_blocks - 1):
            up.append(OASISResBlockD(2 * channels[-1 - i], channels[-2 - i], 1, spectral_norm))
        up.append(OASISResBlockD(2 * channels[1], ndf, 1, spectral_norm))
        self.body_up = nn.ModuleList(up)
        self.layer_up_last = nn.Conv2d(ndf, semantic_nc + 1, 1, 1, 0)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        factor = 2**self.num_res_blocks
        height, width = image.shape[-2:]
        if height % factor or width % factor:
            raise ValueError(
                f"the OASIS discriminator (num_res_blocks={self.num_res_blocks}) needs image "
                f"sides divisible by {factor}, got {height}x{width}; set data.crop_size or "
                "model.discriminator.num_res_blocks"
            )
        x = image
        skips = []
        for block in self.body_down:
            x = block(x)
            skips.append(x)
        x = self.body_up[0](x)
        for i in range(1, len(self.body_down)):
            x = self.body_up[i](torch.cat([skips[-i - 1], x], dim=1))
        return self.layer_up_last(x)

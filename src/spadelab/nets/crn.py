"""The cascaded refinement network (CRN; Chen & Koltun, "Photographic Image Synthesis with
Cascaded Refinement Networks", ICCV 2017), the baseline of SPADE's Table 1.

A cascade of refinement modules, each at twice the resolution of the previous one. Module i
sees the previous module's features upsampled (bilinear) concatenated with the label map
downsampled to its resolution, and applies two 3x3 conv -> norm -> leaky-ReLU layers; a 1x1 conv
maps the last features to RGB. The first module sees the label map alone. The paper used layer
normalization; here the norm layer is the configured ``norm`` + ``modulation`` (the preset
chooses an unconditional one, so the label map enters only through the concatenation).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from spadelab.nets.blocks import NormLayer, leaky_relu
from spadelab.nets.generators import scaled_width

# Seven modules for 256x256 (4x4 to 256x256): 1024 channels up to 64x64, 512 at 128, 128 at 256
# (our reading of the paper's 256p model; in units of ngf=64).
CRN_WIDTHS = (16, 16, 16, 16, 16, 8, 2)


class RefinementModule(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, norm_layer: NormLayer) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.conv_0 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm_0 = norm_layer(out_channels, "block_input")
        self.conv_1 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.norm_1 = norm_layer(out_channels, "inner")

    def forward(self, x: torch.Tensor, label_map: torch.Tensor) -> torch.Tensor:
        assert x.shape[1] == self.in_channels, (
            f"refinement module expects {self.in_channels} channels, got {x.shape[1]}"
        )
        x = leaky_relu(self.norm_0(self.conv_0(x), label_map))
        return leaky_relu(self.norm_1(self.conv_1(x), label_map))


class CRNGenerator(nn.Module):
    def __init__(
        self,
        semantic_nc: int,
        image_size: tuple[int, int],
        norm_layer: NormLayer,
        ngf: int = 64,
        width_multiplier: float = 1.0,
        widths: Sequence[int] = CRN_WIDTHS,
        first_size: int = 4,
    ) -> None:
        super().__init__()
        ngf = scaled_width(ngf, width_multiplier)
        if len(widths) < 1 or any(w < 1 for w in widths):
            raise ValueError(f"model.generator.widths={list(widths)} must be positive numbers")
        self.semantic_nc = semantic_nc
        height, width = image_size
        # The cascade starts at first_size on the shorter side (the paper: 4, i.e. 4x8 for
        # 256x512) and doubles up to the image; smaller images drop the coarsest modules.
        if first_size < 1:
            raise ValueError(f"model.generator.first_size={first_size} must be >= 1")
        short = min(height, width)
        num_modules = (short // first_size).bit_length()
        factor = 2 ** (num_modules - 1)
        if short % first_size or short // first_size != factor:
            raise ValueError(
                f"image size {height}x{width}: the shorter side must be "
                f"model.generator.first_size={first_size} times a power of 2"
            )
        if height % factor or width % factor:
            raise ValueError(f"image size {height}x{width} is not divisible by {factor}")
        if num_modules > len(widths):
            raise ValueError(
                f"image size {height}x{width} needs {num_modules} refinement modules from "
                f"{first_size}px but model.generator.widths has {len(widths)}; add widths"
            )
        widths = list(widths)[len(widths) - num_modules :]
        self.sh, self.sw = height // factor, width // factor
        channels = [w * ngf for w in widths]
        self.refine = nn.ModuleList(
            RefinementModule(semantic_nc + (channels[i - 1] if i else 0), c, norm_layer)
            for i, c in enumerate(channels)
        )
        self.conv_img = nn.Conv2d(channels[-1], 3, 1)

    def forward(self, label_map: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        assert label_map.shape[1] == self.semantic_nc, (
            f"generator expects {self.semantic_nc} label channels, got {label_map.shape[1]}"
        )
        size = (self.sh, self.sw)
        x = self.refine[0](F.interpolate(label_map, size=size, mode="nearest"), label_map)
        for module in self.refine[1:]:
            size = (size[0] * 2, size[1] * 2)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            labels = F.interpolate(label_map, size=size, mode="nearest")
            x = module(torch.cat([x, labels], dim=1), label_map)
        # The paper's output layer is linear; tanh keeps images in [-1, 1] like every generator.
        return torch.tanh(self.conv_img(x))

"""Generators. Each takes ``(label_map, z=None)`` and returns an image in [-1, 1].

Which normalization and how the label map enters it are not the generator's business: it gets
a ``norm_layer`` factory built from the ``norm`` and ``modulation`` config groups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import torch
import torch.nn as nn
import torch.nn.functional as F

from spadelab.nets.blocks import (
    ConvNormAct,
    NormLayer,
    ResnetBlock,
    SPADEResBlock,
    leaky_relu,
    spectral,
)


def scaled_width(ngf: int, width_multiplier: float) -> int:
    """The base width times the capacity multiplier (Table 4's 141M / 96M / 61M rows)."""
    if ngf < 1:
        raise ValueError(f"model.generator.ngf={ngf} must be >= 1 (the base channel width)")
    if width_multiplier <= 0:
        raise ValueError(f"model.generator.width_multiplier={width_multiplier} must be > 0")
    return max(1, round(ngf * width_multiplier))


class GeneratorInput(str, Enum):
    """``model.generator.input_kind``: what the decoder starts from."""

    segmap = "segmap"  # the label map, downsampled, through a 3x3 conv (paper default)
    noise = "noise"  # z (random, or from the VAE encoder) through a linear layer


def draws_noise(generator: nn.Module) -> bool:
    """Whether ``generator`` starts from a random z (SPADE ``input_kind=noise``, OASIS' 3D
    noise): samples, synthesize and the studio then draw z. Generators without z (pix2pixHD,
    CRN) have no ``input_kind``."""
    return getattr(generator, "input_kind", None) is GeneratorInput.noise


class Upsamplings(str, Enum):
    normal = "normal"
    more = "more"
    most = "most"


NUM_UPSAMPLINGS = {Upsamplings.normal: 5, Upsamplings.more: 6, Upsamplings.most: 7}


@dataclass
class DecoderContext:
    """What a SPADE decoder variant derives from the label map before decoding.

    ``features`` (N, 16 ngf, sh, sw) are added to the first features; ``unpool_indices`` are
    max-pooling indices, finest first, that the upsamplings may unpool with. The plain SPADE
    decoder has neither; :class:`UnpoolSPADEGenerator` fills both.
    """

    features: torch.Tensor | None = None
    unpool_indices: list[torch.Tensor] = field(default_factory=list)


class SPADEGenerator(nn.Module):
    """The SPADE decoder (paper Fig. 12): a stack of SPADE res-blocks with nearest upsampling.

    Module names follow the official code (fc, head_0, G_middle_*, up_*, conv_img).
    """

    def __init__(
        self,
        semantic_nc: int,
        image_size: tuple[int, int],
        norm_layer: NormLayer,
        ngf: int = 64,
        width_multiplier: float = 1.0,
        z_dim: int = 256,
        input_kind: str = "segmap",
        num_upsampling_layers: str = "normal",
        spectral_norm: bool = True,
    ) -> None:
        super().__init__()
        ngf = scaled_width(ngf, width_multiplier)
        self.semantic_nc = semantic_nc
        self.input_kind = GeneratorInput(input_kind)
        self.upsamplings = Upsamplings(num_upsampling_layers)
        self.num_up = NUM_UPSAMPLINGS[self.upsamplings]
        self.z_dim = z_dim
        height, width = image_size
        factor = 2**self.num_up
        if height % factor or width % factor:
            raise ValueError(
                f"image size {height}x{width} is not divisible by 2^{self.num_up}={factor} "
                f"(num_upsampling_layers={self.upsamplings.value}); change data.crop_size / "
                "data.aspect_ratio or model.generator.num_upsampling_layers"
            )
        self.sh, self.sw = height // factor, width // factor
        nf = ngf
        if self.input_kind is GeneratorInput.noise:
            self.fc = nn.Linear(z_dim, 16 * nf * self.sh * self.sw)
        else:
            self.fc = nn.Conv2d(semantic_nc, 16 * nf, 3, padding=1)
        widths = [16 * nf, 16 * nf, 16 * nf, 16 * nf, 8 * nf, 4 * nf, 2 * nf, 1 * nf]
        names = ["head_0", "G_middle_0", "G_middle_1", "up_0", "up_1", "up_2", "up_3"]
        if self.upsamplings is Upsamplings.most:
            widths.append(nf // 2)
            names.append("up_4")
        for name, fin, fout in zip(names, widths[:-1], widths[1:]):
            self.add_module(name, SPADEResBlock(fin, fout, norm_layer, spectral_norm))
        self.block_names = names
        # Which blocks are preceded by an upsampling: G_middle_1 only in "more" / "most".
        self.upsample_before = {name: True for name in names[1:]}
        self.upsample_before["G_middle_1"] = self.upsamplings is not Upsamplings.normal
        self.conv_img = nn.Conv2d(widths[-1], 3, 3, padding=1)

    def initial_features(self, label_map: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        if self.input_kind is GeneratorInput.noise:
            if z is None:
                z = torch.randn(label_map.shape[0], self.z_dim, device=label_map.device)
            return self.fc(z).view(label_map.shape[0], -1, self.sh, self.sw)
        return self.fc(F.interpolate(label_map, size=(self.sh, self.sw), mode="nearest"))

    def upsample(self, x: torch.Tensor, step: int, context: DecoderContext) -> torch.Tensor:
        """The ``step``-th doubling of the decoder's resolution (0: the coarsest)."""
        return F.interpolate(x, scale_factor=2, mode="nearest")

    def decoder_context(self, label_map: torch.Tensor) -> DecoderContext:
        return DecoderContext()

    def forward(self, label_map: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        assert label_map.shape[1] == self.semantic_nc, (
            f"generator expects {self.semantic_nc} label channels, got {label_map.shape[1]}"
        )
        context = self.decoder_context(label_map)
        x = self.initial_features(label_map, z)
        if context.features is not None:
            x = x + context.features
        step = 0
        for name in self.block_names:
            if self.upsample_before.get(name, False):
                x = self.upsample(x, step, context)
                step += 1
            x = getattr(self, name)(x, label_map)
        return torch.tanh(self.conv_img(leaky_relu(x)))


class LabelPoolEncoder(nn.Module):
    """Downsamples the label map with conv blocks and max pooling, keeping the pool indices.

    The pooling positions are chosen on a one-channel summary (the channel mean) and the wide
    features are gathered at those positions, so one index map serves every channel of the
    decoder: unpooling keeps the pooled tensor's shape, whatever the decoder's width.
    """

    def __init__(self, semantic_nc: int, width: int, levels: int) -> None:
        super().__init__()
        channels = [semantic_nc] + [min(width * 2**i, 8 * width) for i in range(levels + 1)]
        self.convs = nn.ModuleList(
            nn.Conv2d(cin, cout, 3, padding=1) for cin, cout in zip(channels[:-1], channels[1:])
        )
        self.out_channels = channels[-1]

    def forward(self, label_map: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x, indices = label_map, []
        for conv in self.convs[:-1]:
            x = leaky_relu(conv(x))
            _, idx = F.max_pool2d(x.mean(dim=1, keepdim=True), 2, return_indices=True)
            x = x.flatten(2).gather(2, idx.flatten(2).expand(-1, x.shape[1], -1))
            x = x.view(*x.shape[:2], *idx.shape[-2:])
            indices.append(idx)
        return leaky_relu(self.convs[-1](x)), indices


class UnpoolSPADEGenerator(SPADEGenerator):
    """The Stanford report's unpooling VAE-GAN generator.

    A label encoder pools the one-hot map from half resolution down to the decoder's first
    size; every decoder upsampling but the last is a MaxUnpool2d with the matching indices, the
    last one stays nearest. The encoder's bottleneck enters the decoder's first features.
    """

    def __init__(self, *args, encoder_width: int = 32, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.label_encoder = LabelPoolEncoder(self.semantic_nc, encoder_width, self.num_up - 1)
        self.fc_labels = nn.Conv2d(self.label_encoder.out_channels, self.fc_out_channels, 3, 1, 1)

    @property
    def fc_out_channels(self) -> int:
        return self.head_0.in_channels

    def decoder_context(self, label_map: torch.Tensor) -> DecoderContext:
        size = (self.sh * 2 ** (self.num_up - 1), self.sw * 2 ** (self.num_up - 1))
        bottleneck, indices = self.label_encoder(F.interpolate(label_map, size, mode="nearest"))
        return DecoderContext(features=self.fc_labels(bottleneck), unpool_indices=indices)

    def upsample(self, x: torch.Tensor, step: int, context: DecoderContext) -> torch.Tensor:
        indices = context.unpool_indices
        if step >= len(indices):
            return F.interpolate(x, scale_factor=2, mode="nearest")
        idx = indices[len(indices) - 1 - step]
        return F.max_unpool2d(
            x,
            idx.expand(-1, x.shape[1], -1, -1),
            2,
            output_size=(x.shape[-2] * 2, x.shape[-1] * 2),
        )


class Pix2PixHDGenerator(nn.Module):
    """pix2pixHD's global generator: encoder, residual blocks, decoder.

    The label map is the input; ``norm_layer`` decides whether it also enters every layer
    (SPADE / concat: "pix2pixHD++ w/ SPADE" and "w/ Concat") or not (param_free / affine:
    pix2pixHD / pix2pixHD++). As in the official code, a conv followed by a norm has no bias
    (the norm's mean subtraction cancels it); ``conv_bias=True`` keeps one anyway.
    """

    def __init__(
        self,
        semantic_nc: int,
        image_size: tuple[int, int],
        norm_layer: NormLayer,
        ngf: int = 64,
        width_multiplier: float = 1.0,
        n_downsampling: int = 4,
        n_blocks: int = 9,
        initial_kernel_size: int = 7,
        kernel_size: int = 3,
        spectral_norm: bool = True,
        conv_bias: bool = False,
    ) -> None:
        super().__init__()
        ngf = scaled_width(ngf, width_multiplier)
        height, width = image_size
        if height % 2**n_downsampling or width % 2**n_downsampling:
            raise ValueError(
                f"image size {height}x{width} is not divisible by 2^{n_downsampling}; "
                "change data.crop_size or model.generator.n_downsampling"
            )
        self.semantic_nc = semantic_nc
        pad = initial_kernel_size // 2
        layers: list[nn.Module] = [
            ConvNormAct(
                nn.Conv2d(semantic_nc, ngf, initial_kernel_size, bias=conv_bias),
                ngf,
                norm_layer,
                spectral_norm,
                pad,
            )
        ]
        for i in range(n_downsampling):
            cin, cout = ngf * 2**i, ngf * 2 ** (i + 1)
            conv = nn.Conv2d(cin, cout, kernel_size, stride=2, padding=1, bias=conv_bias)
            layers.append(ConvNormAct(conv, cout, norm_layer, spectral_norm))
        dim = ngf * 2**n_downsampling
        layers += [
            ResnetBlock(dim, norm_layer, spectral_norm, kernel_size, conv_bias)
            for _ in range(n_blocks)
        ]
        for i in range(n_downsampling):
            cin = ngf * 2 ** (n_downsampling - i)
            conv = nn.ConvTranspose2d(
                cin, cin // 2, kernel_size, stride=2, padding=1, output_padding=1, bias=conv_bias
            )
            layers.append(ConvNormAct(conv, cin // 2, norm_layer, spectral_norm))
        self.layers = nn.ModuleList(layers)
        self.conv_img = nn.Sequential(
            nn.ReflectionPad2d(pad), nn.Conv2d(ngf, 3, initial_kernel_size)
        )

    def forward(self, label_map: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        assert label_map.shape[1] == self.semantic_nc, (
            f"generator expects {self.semantic_nc} label channels, got {label_map.shape[1]}"
        )
        x = label_map
        for layer in self.layers:
            x = layer(x, label_map)
        return torch.tanh(self.conv_img(x))


__all__ = [
    "DecoderContext",
    "GeneratorInput",
    "draws_noise",
    "Pix2PixHDGenerator",
    "SPADEGenerator",
    "UnpoolSPADEGenerator",
    "spectral",
]

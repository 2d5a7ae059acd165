"""Loss terms as small pure functions.

Discriminator outputs are lists (one per scale) of lists of features, the last feature being the
patch logits. GAN terms are averaged over pixels, then over scales, as in the official code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import Enum

import torch
import torch.nn.functional as F

Features = Sequence[Sequence[torch.Tensor]]


def _logits(outputs: Features) -> list[torch.Tensor]:
    return [scale[-1] for scale in outputs]


def _mean_over_scales(values: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(values).mean()


def hinge_d_loss(real: Features, fake: Features) -> tuple[torch.Tensor, torch.Tensor]:
    """(real term, fake term): mean(relu(1 - D(x))), mean(relu(1 + D(G(s))))."""
    real_term = _mean_over_scales([F.relu(1 - x).mean() for x in _logits(real)])
    fake_term = _mean_over_scales([F.relu(1 + x).mean() for x in _logits(fake)])
    return real_term, fake_term


def hinge_g_loss(fake: Features) -> torch.Tensor:
    return _mean_over_scales([-x.mean() for x in _logits(fake)])


def ls_d_loss(real: Features, fake: Features) -> tuple[torch.Tensor, torch.Tensor]:
    real_term = _mean_over_scales([(x - 1).pow(2).mean() for x in _logits(real)])
    fake_term = _mean_over_scales([x.pow(2).mean() for x in _logits(fake)])
    return real_term, fake_term


def ls_g_loss(fake: Features) -> torch.Tensor:
    return _mean_over_scales([(x - 1).pow(2).mean() for x in _logits(fake)])


def original_d_loss(real: Features, fake: Features) -> tuple[torch.Tensor, torch.Tensor]:
    bce = F.binary_cross_entropy_with_logits
    real_term = _mean_over_scales([bce(x, torch.ones_like(x)) for x in _logits(real)])
    fake_term = _mean_over_scales([bce(x, torch.zeros_like(x)) for x in _logits(fake)])
    return real_term, fake_term


def original_g_loss(fake: Features) -> torch.Tensor:
    """The non-saturating generator loss: -log D(G(s))."""
    bce = F.binary_cross_entropy_with_logits
    return _mean_over_scales([bce(x, torch.ones_like(x)) for x in _logits(fake)])


class GanMode(str, Enum):
    hinge = "hinge"
    ls = "ls"
    original = "original"


GAN_LOSSES: dict[GanMode, tuple[Callable, Callable]] = {
    GanMode.hinge: (hinge_d_loss, hinge_g_loss),
    GanMode.ls: (ls_d_loss, ls_g_loss),
    GanMode.original: (original_d_loss, original_g_loss),
}


def feature_matching_loss(fake: Features, real: Features) -> torch.Tensor:
    """L1 between the discriminator's intermediate features (pix2pixHD eq. 4).

    Summed over layers, averaged over scales (the official weighting); the real features are
    targets and carry no gradient.
    """
    total = fake[0][0].new_zeros(())
    for fake_scale, real_scale in zip(fake, real):
        for fake_feature, real_feature in zip(fake_scale[:-1], real_scale[:-1]):
            total = total + F.l1_loss(fake_feature, real_feature.detach())
    return total / len(fake)


def perceptual_loss(
    fake_features: Sequence[torch.Tensor],
    real_features: Sequence[torch.Tensor],
    layer_weights: Sequence[float] = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0),
) -> torch.Tensor:
    """Weighted L1 between VGG19 relu*_1 features (the official VGGLoss)."""
    if len(layer_weights) != len(fake_features):
        raise ValueError(
            f"loss.vgg_layer_weights has {len(layer_weights)} entries for "
            f"{len(fake_features)} VGG layers"
        )
    return sum(
        w * F.l1_loss(f, r.detach())
        for w, f, r in zip(layer_weights, fake_features, real_features)
    )


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)), summed as in the official code (weight 0.05)."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())

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


# ---- OASIS: the segmentation discriminator's (N+1)-class loss and LabelMix ----------------
def class_counts(classes: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Pixels per class (float, ``num_classes``) of a class-index map of any shape."""
    return torch.bincount(classes.flatten(), minlength=num_classes)[:num_classes].float()


def class_balance_weights(counts: torch.Tensor, ignore_index: int | None = None) -> torch.Tensor:
    """OASIS eq. 3: each class weighted by its inverse pixel frequency.

    ``w_c = total / (present * count_c)``: 1 for every class when all are equally frequent, and
    the weighted pixels of each present class sum to the same amount. Absent classes (and
    ``ignore_index``, OASIS's don't-care) get weight 0. ``counts`` may be one batch's (the
    official code) or the training set's.
    """
    counts = counts.float().clone()
    if ignore_index is not None:
        counts[ignore_index] = 0
    present = counts > 0
    if not bool(present.any()):
        raise ValueError("class_balance_weights: every class count is zero")
    weights = torch.zeros_like(counts)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


def oasis_d_loss(
    real_logits: torch.Tensor,
    fake_logits: torch.Tensor,
    classes: torch.Tensor,
    class_weights: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(real term, fake term) of the (N+1)-class loss (OASIS eq. 2).

    Logits (B, N+1, H, W); ``classes`` (B, H, W) in [0, N). Real pixels must be classified as
    their class, weighted by ``class_weights[class]``; every fake pixel as class N ("fake").
    """
    num_classes = real_logits.shape[1] - 1
    real_term = F.cross_entropy(real_logits, classes, reduction="none") * class_weights[classes]
    fake_target = torch.full_like(classes, num_classes)
    fake_term = F.cross_entropy(fake_logits, fake_target)
    return real_term.mean(), fake_term


def oasis_g_loss(
    fake_logits: torch.Tensor, classes: torch.Tensor, class_weights: torch.Tensor
) -> torch.Tensor:
    """The generator's term: its images must be segmented as the label map (OASIS eq. 4)."""
    return (
        F.cross_entropy(fake_logits, classes, reduction="none") * class_weights[classes]
    ).mean()


def labelmix(
    classes: torch.Tensor,
    fake: torch.Tensor,
    real: torch.Tensor,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """LabelMix (OASIS sec. 3.2): (mixed image, mask (B, 1, H, W)).

    Every class present in the batch is taken from the real image or the fake one by a coin
    flip (one flip per class for the whole batch, as in the official code).
    """
    num = int(classes.max()) + 1
    flips = torch.randint(0, 2, (num,), generator=generator).to(classes.device)
    mask = flips[classes].unsqueeze(1).to(real.dtype)
    return mask * real + (1 - mask) * fake, mask


def labelmix_loss(
    mask: torch.Tensor,
    mixed_logits: torch.Tensor,
    fake_logits: torch.Tensor,
    real_logits: torch.Tensor,
) -> torch.Tensor:
    """D's output on the mixed image must equal the same mix of its outputs (MSE, OASIS eq. 5)."""
    return F.mse_loss(mixed_logits, mask * real_logits + (1 - mask) * fake_logits)


class ClassBalance(str, Enum):
    batch = "batch"  # the official code: inverse class frequencies of each batch
    dataset = "dataset"  # of the training set, counted once and cached
    none = "none"

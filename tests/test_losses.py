"""The loss terms against hand computations on small tensors."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from spadelab import losses

# Two discriminator scales with different numbers of patch logits (4 and 2): averaging over
# scales, (a + b) / 2, differs from averaging over all 6 pooled logits.
REAL_LOGITS = ([[0.5, -2.0], [1.5, 0.0]], [[2.0, -1.0]])
FAKE_LOGITS = ([[-0.5, 2.0], [-1.5, 0.0]], [[-2.0, 1.0]])


def _outputs(logits: tuple[list[list[float]], ...]) -> list[list[torch.Tensor]]:
    """One feature (ignored by the GAN terms: a huge value would show) + the logits per scale."""
    return [
        [torch.full((1, 2, 3, 3), 1e6), torch.tensor(values).view(1, 1, len(values), -1)]
        for values in logits
    ]


def _close(value: torch.Tensor, expected: float) -> None:
    assert value.dim() == 0
    assert value.item() == pytest.approx(expected, rel=1e-6, abs=1e-7)


def test_hinge_terms_against_hand_computation() -> None:
    real, fake = _outputs(REAL_LOGITS), _outputs(FAKE_LOGITS)
    real_term, fake_term = losses.hinge_d_loss(real, fake)
    # relu(1 - x): scale 1 [0.5, 3, 0, 1] -> 1.125; scale 2 [0, 2] -> 1.0.
    _close(real_term, (1.125 + 1.0) / 2)
    # relu(1 + x) on the fake logits: scale 1 [0.5, 3, 0, 1] -> 1.125; scale 2 [0, 2] -> 1.0.
    _close(fake_term, (1.125 + 1.0) / 2)
    # -mean(x): scale 1 -0.0 ; scale 2 0.5.
    _close(losses.hinge_g_loss(fake), (0.0 + 0.5) / 2)
    _close(losses.hinge_g_loss(real), (-0.0 - 0.5) / 2)


def test_hinge_is_not_the_mean_over_pooled_logits() -> None:
    real = _outputs(REAL_LOGITS)
    pooled = torch.relu(1 - torch.tensor([0.5, -2.0, 1.5, 0.0, 2.0, -1.0])).mean()
    real_term, _ = losses.hinge_d_loss(real, real)
    assert not math.isclose(real_term.item(), pooled.item())


def test_least_squares_terms_against_hand_computation() -> None:
    real, fake = _outputs(REAL_LOGITS), _outputs(FAKE_LOGITS)
    real_term, fake_term = losses.ls_d_loss(real, fake)
    # (x - 1)^2 on real: scale 1 [0.25, 9, 0.25, 1] -> 2.625; scale 2 [1, 4] -> 2.5.
    _close(real_term, (2.625 + 2.5) / 2)
    # x^2 on fake: scale 1 [0.25, 4, 2.25, 0] -> 1.625; scale 2 [4, 1] -> 2.5.
    _close(fake_term, (1.625 + 2.5) / 2)
    # (x - 1)^2 on fake: scale 1 [2.25, 1, 6.25, 1] -> 2.625; scale 2 [9, 0] -> 4.5.
    _close(losses.ls_g_loss(fake), (2.625 + 4.5) / 2)


def test_original_terms_against_hand_computation() -> None:
    # sigmoid(ln 3) = 3/4, sigmoid(0) = 1/2.
    ln3 = math.log(3.0)
    real = _outputs(([[ln3, 0.0]], [[0.0]]))
    fake = _outputs(([[-ln3, -ln3]], [[ln3]]))
    real_term, fake_term = losses.original_d_loss(real, fake)
    # -log D(x): scale 1 [-log 3/4, log 2] ; scale 2 [log 2].
    _close(real_term, ((-math.log(0.75) + math.log(2)) / 2 + math.log(2)) / 2)
    # -log(1 - D(G(s))): scale 1 both -log(3/4) ; scale 2 -log(1/4).
    _close(fake_term, (-math.log(0.75) - math.log(0.25)) / 2)
    # The non-saturating G loss, -log D(G(s)): scale 1 -log(1/4) ; scale 2 -log(3/4).
    _close(losses.original_g_loss(fake), (-math.log(0.25) - math.log(0.75)) / 2)


def test_gan_modes_map_to_their_functions() -> None:
    assert losses.GAN_LOSSES[losses.GanMode("hinge")] == (
        losses.hinge_d_loss,
        losses.hinge_g_loss,
    )
    assert losses.GAN_LOSSES[losses.GanMode("ls")] == (losses.ls_d_loss, losses.ls_g_loss)
    assert losses.GAN_LOSSES[losses.GanMode("original")] == (
        losses.original_d_loss,
        losses.original_g_loss,
    )
    with pytest.raises(ValueError, match="wgan"):
        losses.GanMode("wgan")


def test_gan_terms_give_gradients_to_the_logits_only() -> None:
    feature = torch.zeros(1, 1, 2, 2, requires_grad=True)
    logits = torch.tensor([[[[0.5, -0.5]]]], requires_grad=True)
    losses.hinge_g_loss([[feature, logits]]).backward()
    assert feature.grad is None
    torch.testing.assert_close(logits.grad, torch.full_like(logits, -0.5))


def test_feature_matching_sums_layers_and_averages_scales() -> None:
    ones = torch.ones(1, 1, 2, 2)
    fake = [
        [torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2, 2), torch.full((1, 1, 1, 2), 100.0)],
        [torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 1, 1)],
    ]
    real = [
        [ones, 3 * torch.ones(1, 2, 2, 2), torch.zeros(1, 1, 1, 2)],  # logits differ: ignored
        [-2 * ones, torch.ones(1, 1, 1, 1)],
    ]
    # Scale 1: L1 1 + L1 3; scale 2: L1 2. Summed over layers, divided by 2 scales.
    _close(losses.feature_matching_loss(fake, real), (1 + 3 + 2) / 2)


def test_feature_matching_does_not_push_gradients_into_real_features() -> None:
    fake_feature = torch.zeros(1, 1, 2, 2, requires_grad=True)
    real_feature = torch.ones(1, 1, 2, 2, requires_grad=True)
    logits = torch.zeros(1, 1, 1, 1)
    loss = losses.feature_matching_loss([[fake_feature, logits]], [[real_feature, logits]])
    loss.backward()
    assert real_feature.grad is None
    # d/dx mean|x - 1| at x = 0 is -1/4 per element.
    torch.testing.assert_close(fake_feature.grad, torch.full_like(fake_feature, -0.25))


def test_perceptual_loss_weights_each_layer() -> None:
    fake = [torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 2, 2), torch.zeros(1, 8, 1, 1)]
    real = [torch.ones(1, 2, 4, 4), 2 * torch.ones(1, 4, 2, 2), -4 * torch.ones(1, 8, 1, 1)]
    _close(losses.perceptual_loss(fake, real, (0.5, 0.25, 1.0)), 0.5 * 1 + 0.25 * 2 + 1.0 * 4)


def test_perceptual_loss_default_weights_are_the_official_ones() -> None:
    fake = [torch.zeros(1, 1, 1, 1) for _ in range(5)]
    real = [torch.ones(1, 1, 1, 1) for _ in range(5)]
    _close(losses.perceptual_loss(fake, real), 1 / 32 + 1 / 16 + 1 / 8 + 1 / 4 + 1.0)


def test_perceptual_loss_detaches_real_and_checks_the_weight_count() -> None:
    fake = [torch.zeros(1, 1, 2, 2, requires_grad=True)]
    real = [torch.ones(1, 1, 2, 2, requires_grad=True)]
    losses.perceptual_loss(fake, real, (2.0,)).backward()
    assert real[0].grad is None
    torch.testing.assert_close(fake[0].grad, torch.full_like(fake[0], -0.5))
    with pytest.raises(ValueError, match="loss.vgg_layer_weights has 2 entries for 1"):
        losses.perceptual_loss(fake, real, (1.0, 2.0))


def test_kl_divergence_closed_form() -> None:
    mu = torch.tensor([[1.0, 0.0, -2.0]])
    logvar = torch.tensor([[0.0, math.log(2.0), math.log(0.5)]])
    # Per element: 0.5 * (mu^2 + var - 1 - log var).
    expected = (
        0.5 * (1.0 + 0.0) + 0.5 * (2 - 1 - math.log(2)) + 0.5 * (4 + 0.5 - 1 - math.log(0.5))
    )
    _close(losses.kl_divergence(mu, logvar), expected)
    reference = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum()
    torch.testing.assert_close(losses.kl_divergence(mu, logvar), reference)


def test_kl_divergence_is_summed_not_averaged_and_zero_at_the_prior() -> None:
    assert losses.kl_divergence(torch.zeros(4, 8), torch.zeros(4, 8)).item() == 0.0
    one = losses.kl_divergence(torch.ones(1, 1), torch.zeros(1, 1))
    many = losses.kl_divergence(torch.ones(4, 8), torch.zeros(4, 8))
    torch.testing.assert_close(many, 32 * one)


# ---- OASIS -------------------------------------------------------------------------------


def test_class_balance_weights_are_inverse_frequencies() -> None:
    counts = torch.tensor([6.0, 2.0, 0.0, 4.0])  # 12 pixels, 3 classes present
    weights = losses.class_balance_weights(counts)
    torch.testing.assert_close(weights, torch.tensor([12 / 18, 12 / 6, 0.0, 12 / 12]))
    # Every present class carries the same total weight; uniform classes weigh 1 each.
    present = counts > 0
    totals = (weights * counts)[present]
    torch.testing.assert_close(totals, torch.full_like(totals, 4.0))
    torch.testing.assert_close(losses.class_balance_weights(torch.ones(5)), torch.ones(5))
    # The don't-care class is left out of the balance, as in the official code.
    ignored = losses.class_balance_weights(counts, ignore_index=0)
    torch.testing.assert_close(ignored, torch.tensor([0.0, 6 / 4, 0.0, 6 / 8]))
    with pytest.raises(ValueError, match="zero"):
        losses.class_balance_weights(torch.zeros(3))
    classes = torch.tensor([[0, 0, 3], [1, 3, 3]])
    torch.testing.assert_close(losses.class_counts(classes, 5), torch.tensor([2.0, 1, 0, 3, 0]))


def test_oasis_losses_against_a_hand_computation() -> None:
    # One image of 2 pixels, 2 classes + "fake" (index 2).
    real_logits = torch.tensor([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0]]).T.reshape(1, 3, 1, 2)
    fake_logits = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]).T.reshape(1, 3, 1, 2)
    classes = torch.tensor([[[0, 1]]])
    weights = torch.tensor([2.0, 0.5])

    def nll(logits: list[float], target: int) -> float:
        return -logits[target] + math.log(sum(math.exp(v) for v in logits))

    real, fake = losses.oasis_d_loss(real_logits, fake_logits, classes, weights)
    _close(real, (2.0 * nll([1, 0, -1], 0) + 0.5 * nll([0, 2, 0], 1)) / 2)
    _close(fake, (nll([0, 0, 1], 2) + nll([1, 0, 0], 2)) / 2)
    g = losses.oasis_g_loss(fake_logits, classes, weights)
    _close(g, (2.0 * nll([0, 0, 1], 0) + 0.5 * nll([1, 0, 0], 1)) / 2)


def test_labelmix_takes_each_class_from_one_image() -> None:
    classes = torch.tensor([[[0, 1], [2, 1]], [[2, 2], [0, 1]]])
    real, fake = torch.ones(2, 3, 2, 2), -torch.ones(2, 3, 2, 2)
    mixed, mask = losses.labelmix(classes, fake, real, torch.Generator().manual_seed(0))
    assert mask.shape == (2, 1, 2, 2)
    for c in range(3):
        values = mask[:, 0][classes == c]
        assert (values == values[0]).all(), "one coin flip per class for the whole batch"
    torch.testing.assert_close(mixed, mask * real + (1 - mask) * fake)
    # The regulariser: D's output on the mix must be the same mix of its outputs.
    out_real, out_fake = torch.randn(2, 4, 2, 2), torch.randn(2, 4, 2, 2)
    consistent = mask * out_real + (1 - mask) * out_fake
    _close(losses.labelmix_loss(mask, consistent, out_fake, out_real), 0.0)
    _close(losses.labelmix_loss(mask, consistent + 0.5, out_fake, out_real), 0.25)

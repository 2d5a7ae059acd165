"""Switchable Normalization: each term on its own equals the norm it is named after."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from spadelab.norm import param_free
from spadelab.norm.switchable import SwitchableNorm

C, EPS = 4, 1e-5
TERMS = {"in": 0, "ln": 1, "bn": 2}


def _input(n: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scale = torch.linspace(0.5, 3.0, C).view(1, C, 1, 1)
    shift = torch.linspace(-2.0, 4.0, C).view(1, C, 1, 1)
    per_sample = torch.randn(n, 1, 1, 1, generator=g)
    return torch.randn(n, C, 6, 5, generator=g) * scale + shift + per_sample


def _select(norm: SwitchableNorm, term: str) -> SwitchableNorm:
    """Force both softmaxes onto one term (a large logit gives an exact one-hot softmax)."""
    with torch.no_grad():
        for weight in (norm.mean_weight, norm.var_weight):
            weight.fill_(0.0)
            weight[TERMS[term]] = 1e4
    assert torch.equal(F.softmax(norm.mean_weight, 0)[TERMS[term]], torch.tensor(1.0))
    return norm


def test_only_in_is_instance_norm() -> None:
    x = _input()
    norm = _select(SwitchableNorm(C, eps=EPS), "in")
    torch.testing.assert_close(norm(x), F.instance_norm(x, eps=EPS))


def test_only_ln_is_layer_norm_over_chw() -> None:
    x = _input()
    norm = _select(SwitchableNorm(C, eps=EPS), "ln")
    expected = F.layer_norm(x, x.shape[1:], eps=EPS)
    torch.testing.assert_close(norm(x), expected, atol=1e-4, rtol=1e-4)
    # Layer norm differs from instance norm here (channels have different statistics).
    assert not torch.allclose(expected, F.instance_norm(x, eps=EPS), atol=1e-2)


def test_only_bn_is_batch_norm_with_running_statistics() -> None:
    norm = _select(SwitchableNorm(C, eps=EPS, momentum=0.1), "bn")
    ref = nn.BatchNorm2d(C, eps=EPS, momentum=0.1, affine=False)
    for step in range(3):
        x = _input(seed=step)
        torch.testing.assert_close(norm(x), ref(x), atol=1e-4, rtol=1e-4)
    # Running statistics follow BatchNorm's update (unbiased variance, momentum 0.1).
    torch.testing.assert_close(norm.running_mean, ref.running_mean)
    torch.testing.assert_close(norm.running_var, ref.running_var)
    norm.eval()
    ref.eval()
    x = _input(seed=7)
    torch.testing.assert_close(norm(x), ref(x), atol=1e-4, rtol=1e-4)


def test_running_statistics_update_in_train_only_and_drive_eval() -> None:
    norm = SwitchableNorm(C)
    assert torch.equal(norm.running_mean, torch.zeros(C))
    norm(_input())
    updated = norm.running_mean.clone()
    assert not torch.equal(updated, torch.zeros(C))
    norm.eval()
    x = _input(seed=3)
    before = norm(x)
    assert torch.equal(norm.running_mean, updated), "eval must not update running statistics"
    # The eval output uses the running statistics: changing them changes it.
    with torch.no_grad():
        norm.running_mean.add_(1.0)
    assert not torch.allclose(norm(x), before, atol=1e-3)


def test_eval_output_of_a_sample_does_not_depend_on_the_batch() -> None:
    norm = SwitchableNorm(C)  # default weights: IN, LN and BN mixed equally
    for seed in range(3):
        norm(_input(seed=seed))
    x = _input(seed=4)
    other = x.clone()
    other[1:] = _input(seed=5)[1:] * 3
    # In train the BN term uses the batch: the other samples change sample 0's output ...
    assert not torch.allclose(norm(x)[0], norm(other)[0], atol=1e-3)
    # ... in eval IN and LN are per sample and BN uses running statistics: they do not.
    norm.eval()
    torch.testing.assert_close(norm(x)[0], norm(other)[0])
    torch.testing.assert_close(norm(x[:1])[0], norm(x)[0])
    # In eval the IN and LN terms are still computed from the sample, not from running stats.
    _select(norm, "in")
    torch.testing.assert_close(norm(x), F.instance_norm(x, eps=EPS))
    _select(norm, "ln")
    torch.testing.assert_close(
        norm(x), F.layer_norm(x, x.shape[1:], eps=EPS), atol=1e-4, rtol=1e-4
    )


@pytest.mark.parametrize("use_batch_stats", [True, False])
def test_importance_weights_are_learned(use_batch_stats: bool) -> None:
    norm = SwitchableNorm(C, use_batch_stats=use_batch_stats)
    with torch.no_grad():
        norm.mean_weight.copy_(torch.linspace(-0.5, 0.5, norm.mean_weight.numel()))
        norm.var_weight.copy_(torch.linspace(0.3, -0.3, norm.var_weight.numel()))
    x = _input()
    weight = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    (norm(x) * weight).sum().backward()
    for param in (norm.mean_weight, norm.var_weight):
        assert param.requires_grad
        assert param.grad is not None and param.grad.abs().max() > 1e-4
    # One optimizer step moves the mixture.
    before = F.softmax(norm.mean_weight.detach(), 0).clone()
    torch.optim.SGD(norm.parameters(), lr=1.0).step()
    assert not torch.allclose(F.softmax(norm.mean_weight.detach(), 0), before)


def test_switchable_inln_has_two_terms_no_buffers_and_no_train_eval_difference() -> None:
    norm = param_free.switchable_inln(C)
    assert norm.mean_weight.shape == norm.var_weight.shape == (2,)
    assert list(norm.buffers()) == []
    assert set(norm.state_dict()) == {"mean_weight", "var_weight"}
    with torch.no_grad():
        norm.mean_weight.copy_(torch.tensor([0.3, -0.2]))
        norm.var_weight.copy_(torch.tensor([-0.1, 0.4]))
    x = _input()
    train_out = norm(x)
    norm.eval()
    torch.testing.assert_close(norm(x), train_out)
    # IN-only and LN-only limits.
    torch.testing.assert_close(_select(norm, "in")(x), F.instance_norm(x, eps=EPS))
    torch.testing.assert_close(
        _select(norm, "ln")(x), F.layer_norm(x, x.shape[1:], eps=EPS), atol=1e-4, rtol=1e-4
    )


def test_rejects_wrong_channel_count() -> None:
    with pytest.raises(ValueError, match=f"N, {C}, H, W"):
        SwitchableNorm(C)(torch.randn(2, C + 1, 4, 4))

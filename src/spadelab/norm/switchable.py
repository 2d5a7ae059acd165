"""Switchable Normalization: IN, LN and BN statistics mixed by learned importance weights."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class SwitchableNorm(nn.Module):
    """Switchable Normalization (Luo et al., ICLR 2019) without its affine.

    Means and variances of IN, LN and (optionally) BN are mixed by two separate softmax-weighted
    importance vectors. LN and BN statistics are derived from the per-instance ones. In eval,
    the BN term uses running statistics while IN and LN are still computed per sample.
    ``use_batch_stats=False`` is the IN+LN variant that the Stanford report put inside SPADE:
    no buffers, identical in train and eval.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        use_batch_stats: bool = True,
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.use_batch_stats = use_batch_stats
        terms = 3 if use_batch_stats else 2
        self.mean_weight = nn.Parameter(torch.ones(terms))
        self.var_weight = nn.Parameter(torch.ones(terms))
        if use_batch_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.num_features:
            raise ValueError(
                f"expected (N, {self.num_features}, H, W) input, got {tuple(x.shape)}"
            )
        mean_in = x.mean(dim=(2, 3), keepdim=True)
        # Biased variance everywhere so that LN and BN statistics derived from IN are exact.
        var_in = x.var(dim=(2, 3), keepdim=True, unbiased=False)
        second_moment = var_in + mean_in.pow(2)
        mean_ln = mean_in.mean(dim=1, keepdim=True)
        var_ln = second_moment.mean(dim=1, keepdim=True) - mean_ln.pow(2)
        means, variances = [mean_in, mean_ln], [var_in, var_ln]
        if self.use_batch_stats:
            if self.training:
                mean_bn = mean_in.mean(dim=0, keepdim=True)
                var_bn = second_moment.mean(dim=0, keepdim=True) - mean_bn.pow(2)
                with torch.no_grad():
                    n = x.numel() / x.shape[1]
                    unbiased = var_bn.flatten() * n / max(n - 1, 1)
                    self.running_mean.lerp_(mean_bn.flatten(), self.momentum)
                    self.running_var.lerp_(unbiased, self.momentum)
            else:
                mean_bn = self.running_mean.view(1, -1, 1, 1)
                var_bn = self.running_var.view(1, -1, 1, 1)
            means.append(mean_bn)
            variances.append(var_bn)
        mean_w = F.softmax(self.mean_weight, dim=0)
        var_w = F.softmax(self.var_weight, dim=0)
        mean = sum(w * m for w, m in zip(mean_w, means))
        var = sum(w * v for w, v in zip(var_w, variances))
        return (x - mean) * torch.rsqrt(var.clamp_min(0) + self.eps)

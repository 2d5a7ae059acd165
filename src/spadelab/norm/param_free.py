"""Parameter-free normalizations: the ``norm`` axis of every ablation.

Each factory takes the channel count and returns a module without a learned affine; the
modulation (SPADE, concat, affine) supplies scale and bias. Buffers keep the names of the torch
modules (``running_mean``, ``running_var``, ``num_batches_tracked``) so official SPADE
checkpoints load as they are.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn as nn

from spadelab.norm.switchable import SwitchableNorm


class SyncBatchNorm(nn.SyncBatchNorm):
    """torch's SyncBatchNorm on accelerators; an all-reduce BatchNorm on CPU processes.

    torch refuses CPU tensors under DDP ("SyncBatchNorm layers only work with GPU modules"), so
    gloo runs reduce ``[sum, sum of squares, count]`` with the autograd-aware
    ``torch.distributed.nn.functional.all_reduce``: the gradient flows through the global
    statistics exactly as in torch's CUDA kernel. In a single process it is plain BatchNorm.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if input.dim() != 4:
            raise ValueError(f"expected (N, C, H, W) input, got shape {tuple(input.shape)}")
        distributed = (
            self.training
            and dist.is_available()
            and dist.is_initialized()
            and dist.get_world_size() > 1
        )
        if not distributed or input.device.type != "cpu":
            return super().forward(input)
        return self._cpu_sync_forward(input)

    def _cpu_sync_forward(self, input: torch.Tensor) -> torch.Tensor:
        from torch.distributed.nn.functional import all_reduce

        channels = input.shape[1]
        count = torch.full((1,), input.numel() / channels, dtype=input.dtype, device=input.device)
        local = torch.cat([input.sum(dim=(0, 2, 3)), input.pow(2).sum(dim=(0, 2, 3)), count])
        total = all_reduce(local, group=self.process_group or dist.group.WORLD)
        total_count = total[-1]
        mean = total[:channels] / total_count
        var = (total[channels : 2 * channels] / total_count - mean.pow(2)).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = (
                    self.momentum
                    if self.momentum is not None
                    else 1.0 / float(self.num_batches_tracked)
                )
                unbiased = var * total_count / (total_count - 1).clamp_min(1)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(unbiased.detach(), momentum)
        shape = (1, channels, 1, 1)
        out = (input - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


class CPUSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """``param_free.SyncBatchNorm`` as it runs in CPU DDP processes (``trainer=ddp_cpu``).

    DDP refuses any ``nn.SyncBatchNorm`` in a CPU module ("SyncBatchNorm layers only work with
    GPU modules"), although ours all-reduces its statistics on CPU itself. ``setup`` gives such
    layers this class, which is the same layer (same buffers, same all-reduce) without that base.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() != 4:
            raise ValueError(f"expected (N, C, H, W) input, got shape {tuple(input.shape)}")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.training and dist.is_initialized() and dist.get_world_size() > 1:
            return SyncBatchNorm._cpu_sync_forward(self, input)  # type: ignore[arg-type]
        return super().forward(input)


def use_cpu_sync_batchnorm(module: nn.Module) -> int:
    """Give every :class:`SyncBatchNorm` in ``module`` the CPU-DDP class; returns how many.

    Same parameters and buffers, so the state dict and checkpoints do not change.
    """
    count = 0
    for layer in module.modules():
        if type(layer) is SyncBatchNorm:
            layer.__class__ = CPUSyncBatchNorm
            count += 1
    return count


def batch(num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> nn.Module:
    return nn.BatchNorm2d(num_features, eps=eps, momentum=momentum, affine=False)


def syncbatch(num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> nn.Module:
    return SyncBatchNorm(num_features, eps=eps, momentum=momentum, affine=False)


class InstanceNorm2d(nn.InstanceNorm2d):
    """InstanceNorm that also accepts a 1x1 map (small smoke-scale decoders start at 1x1).

    There a sample's only value equals its mean, so the normalized output is exactly 0; torch
    raises instead.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if input.shape[-2:].numel() == 1:
            return torch.zeros_like(input)
        return super().forward(input)


def instance(num_features: int, eps: float = 1e-5) -> nn.Module:
    return InstanceNorm2d(num_features, eps=eps, affine=False, track_running_stats=False)


def switchable(num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> nn.Module:
    return SwitchableNorm(num_features, eps=eps, momentum=momentum, use_batch_stats=True)


def switchable_inln(num_features: int, eps: float = 1e-5) -> nn.Module:
    return SwitchableNorm(num_features, eps=eps, use_batch_stats=False)


def none(num_features: int) -> nn.Module:
    return nn.Identity()

"""The ``norm`` axis: parameter-free normalizations and SyncBatchNorm's CPU all-reduce path."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F

from spadelab.norm import param_free
from spadelab.norm.switchable import SwitchableNorm

C = 3
FACTORIES = ["batch", "syncbatch", "instance", "switchable", "switchable_inln", "none"]


def _input(n: int = 4, c: int = C, h: int = 5, w: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # Per-channel offsets and scales, so that normalizing actually changes the values.
    shift = torch.arange(c, dtype=torch.float32).view(1, c, 1, 1)
    return torch.randn(n, c, h, w, generator=g) * (1 + shift) + 3 * shift


@pytest.mark.parametrize("name", FACTORIES)
def test_factories_have_no_learned_affine(name: str) -> None:
    norm = getattr(param_free, name)(C)
    params = dict(norm.named_parameters())
    if name == "switchable":
        assert {k: tuple(p.shape) for k, p in params.items()} == {
            "mean_weight": (3,),
            "var_weight": (3,),
        }
    elif name == "switchable_inln":
        assert {k: tuple(p.shape) for k, p in params.items()} == {
            "mean_weight": (2,),
            "var_weight": (2,),
        }
    else:
        assert params == {}
    out = norm(_input())
    assert out.shape == (4, C, 5, 6)


@pytest.mark.parametrize("name", ["batch", "syncbatch"])
def test_batch_norms_equal_torch_batchnorm_in_one_process(name: str) -> None:
    norm = getattr(param_free, name)(C, eps=1e-3, momentum=0.2)
    ref = nn.BatchNorm2d(C, eps=1e-3, momentum=0.2, affine=False)
    assert not dist.is_initialized()
    for step in range(3):
        x = _input(seed=step)
        torch.testing.assert_close(norm(x), ref(x))
    # Same running statistics, under the torch names official checkpoints use.
    assert norm.state_dict().keys() == ref.state_dict().keys()
    for key, value in ref.state_dict().items():
        torch.testing.assert_close(norm.state_dict()[key], value)
    assert int(norm.num_batches_tracked) == 3
    assert not torch.allclose(norm.running_mean, torch.zeros(C))
    norm.eval()
    ref.eval()
    x = _input(seed=10)
    torch.testing.assert_close(norm(x), ref(x))
    # Eval uses the running statistics: one sample alone gives the same output as in a batch.
    torch.testing.assert_close(norm(x[:1]), norm(x)[:1])


def test_syncbatch_loads_a_batchnorm_state_dict() -> None:
    ref = nn.BatchNorm2d(C, affine=False)
    ref(_input())
    norm = param_free.syncbatch(C)
    norm.load_state_dict(ref.state_dict())
    torch.testing.assert_close(norm.running_var, ref.running_var)


def test_syncbatch_rejects_non_image_input() -> None:
    with pytest.raises(ValueError, match="N, C, H, W"):
        param_free.syncbatch(C)(torch.randn(4, C))


def test_instance_normalizes_each_sample_and_channel() -> None:
    norm = param_free.instance(C)
    x = _input()
    out = norm(x)
    torch.testing.assert_close(out.mean(dim=(2, 3)), torch.zeros(4, C), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        out.var(dim=(2, 3), unbiased=False), torch.ones(4, C), atol=1e-3, rtol=0
    )
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = x.var(dim=(2, 3), unbiased=False, keepdim=True)
    torch.testing.assert_close(out, (x - mean) / torch.sqrt(var + 1e-5))
    # Per sample: the rest of the batch does not matter, and there is no train/eval difference.
    other = x.clone()
    other[1:] = _input(seed=5)[1:]
    torch.testing.assert_close(norm(other)[0], out[0])
    assert list(norm.buffers()) == []
    norm.eval()
    torch.testing.assert_close(norm(x), out)


def test_none_is_identity() -> None:
    norm = param_free.none(C)
    x = _input()
    assert torch.equal(norm(x), x)
    assert list(norm.parameters()) == [] and list(norm.buffers()) == []


def test_factories_take_the_config_fields() -> None:
    assert param_free.batch(C, eps=1e-3, momentum=0.3).momentum == 0.3
    assert param_free.syncbatch(C, eps=1e-3).eps == 1e-3
    assert param_free.instance(C, eps=1e-3).eps == 1e-3
    sn = param_free.switchable(C, eps=1e-3, momentum=0.3)
    assert isinstance(sn, SwitchableNorm) and (sn.eps, sn.momentum) == (1e-3, 0.3)
    assert sn.use_batch_stats and not param_free.switchable_inln(C).use_batch_stats


# --- SyncBatchNorm under real DDP on CPU (gloo, two processes) --------------------------------

WORLD = 2
# Per step: how the full batch is split between the ranks. The second step is uneven, which
# only comes out right if the all-reduce weights the statistics by each rank's pixel count.
SPLITS = [(2, 2), (3, 1)]


def _ddp_step_data(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The full batch of a step and the weights of the loss sum(out * weight)."""
    n = sum(SPLITS[step])
    x = _input(n=n, seed=100 + step)
    weight = torch.randn(x.shape, generator=torch.Generator().manual_seed(200 + step))
    return x, weight


def _rank_slice(step: int, rank: int) -> slice:
    start = sum(SPLITS[step][:rank])
    return slice(start, start + SPLITS[step][rank])


def _sync_bn_worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        norm = param_free.syncbatch(C, momentum=0.1)
        result: dict[str, object] = {"world_size": dist.get_world_size()}
        for step in range(len(SPLITS)):
            full, weight = _ddp_step_data(step)
            part = _rank_slice(step, rank)
            x = full[part].clone().requires_grad_(True)
            out = norm(x)
            # Each rank backpropagates its own part of the loss only.
            (out * weight[part]).sum().backward()
            result[f"out{step}"] = out.detach()
            result[f"grad{step}"] = x.grad
        result["running_mean"] = norm.running_mean.clone()
        result["running_var"] = norm.running_var.clone()
        result["num_batches_tracked"] = int(norm.num_batches_tracked)
        norm.eval()
        result["eval"] = norm(_input(n=2, seed=300)[rank : rank + 1])
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
        # Tear down together: a rank leaving while gloo still talks to it aborts the other.
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_syncbatch_all_reduces_statistics_and_gradients_under_ddp(tmp_path: Path) -> None:
    start = time.monotonic()
    mp.spawn(
        _sync_bn_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True
    )
    elapsed = time.monotonic() - start
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    assert [r["world_size"] for r in results] == [WORLD, WORLD]

    ref = nn.BatchNorm2d(C, momentum=0.1, affine=False)
    for step in range(len(SPLITS)):
        full, weight = _ddp_step_data(step)
        full = full.clone().requires_grad_(True)
        out = ref(full)
        (out * weight).sum().backward()
        local_bn = F.batch_norm(full[_rank_slice(step, 0)].detach(), None, None, training=True)
        for rank, result in enumerate(results):
            part = _rank_slice(step, rank)
            torch.testing.assert_close(result[f"out{step}"], out[part].detach())
            torch.testing.assert_close(result[f"grad{step}"], full.grad[part])
        # The check has teeth: a rank's own batch statistics give a different output.
        assert not torch.allclose(results[0][f"out{step}"], local_bn, atol=1e-3)

    for key in ("running_mean", "running_var"):
        assert torch.equal(results[0][key], results[1][key]), key
        torch.testing.assert_close(results[0][key], getattr(ref, key))
    assert results[0]["num_batches_tracked"] == results[1]["num_batches_tracked"] == 2
    ref.eval()
    eval_input = _input(n=2, seed=300)
    for rank, result in enumerate(results):
        torch.testing.assert_close(result["eval"], ref(eval_input[rank : rank + 1]))
    assert elapsed < 60, f"DDP test took {elapsed:.1f}s"

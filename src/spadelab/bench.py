"""``spadelab bench`` / ``make bench``: speed and memory of one training iteration.

Measured at the demo configuration (override anything Hydra-style). Reports iterations per
second and the seconds of each phase: generator forward, discriminator forward + backward
(the D step), generator backward (through D), and peak memory. Writes ``bench.json``.
No test asserts on these numbers: time on shared machines varies 2-3x.
"""

from __future__ import annotations

import json
import platform
import resource
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from spadelab.config import compose_config


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(overrides: list[str], iterations: int = 20, warmup: int = 3) -> dict:
    from hydra.utils import instantiate

    from spadelab.module import SemanticSynthesis

    cfg = compose_config("train", ["run_dir=.", *overrides])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    module = SemanticSynthesis(OmegaConf.to_container(cfg, resolve=True)).to(device)
    datamodule = instantiate(cfg.data, num_workers=0)
    batches = iter(datamodule.train_dataloader())
    opt_g = torch.optim.Adam(module.generator.parameters(), lr=1e-4, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(module.discriminator.parameters(), lr=4e-4, betas=(0.0, 0.9))
    phases = {"g_forward": 0.0, "g_backward": 0.0, "d_forward_backward": 0.0, "data": 0.0}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    total_start = None
    for i in range(warmup + iterations):
        if i == warmup:
            phases = dict.fromkeys(phases, 0.0)
            total_start = time.perf_counter()
        t0 = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(datamodule.train_dataloader())
            batch = next(batches)
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        label_map, real = module.label_map(batch), batch["image"]
        t1 = time.perf_counter()
        # Same phases as SemanticSynthesis.training_step, timed one by one.
        module.discriminator.requires_grad_(False)
        terms, fake = module.generator_losses(label_map, real)
        _sync(device)
        t2 = time.perf_counter()
        opt_g.zero_grad(set_to_none=True)
        sum(terms.values()).backward()
        opt_g.step()
        _sync(device)
        t3 = time.perf_counter()
        module.discriminator.requires_grad_(True)
        d_terms = module.discriminator_losses(label_map, fake, real)
        opt_d.zero_grad(set_to_none=True)
        sum(d_terms.values()).backward()
        opt_d.step()
        _sync(device)
        t4 = time.perf_counter()
        phases["data"] += t1 - t0
        phases["g_forward"] += t2 - t1
        phases["g_backward"] += t3 - t2
        phases["d_forward_backward"] += t4 - t3
    elapsed = time.perf_counter() - total_start
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
        peak_kind = "cuda_max_memory_allocated_mib"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        peak_kind = "process_max_rss_mib"
    return {
        "config": {
            "model": cfg.model.name,
            "norm": cfg.norm._target_.rsplit(".", 1)[-1],
            "modulation": cfg.modulation._target_.rsplit(".", 1)[-1],
            "image_size": [int(cfg.data.crop_size)] * 2,
            "batch_size": int(cfg.data.batch_size),
            "ngf": int(cfg.model.generator.ngf),
            "overrides": overrides,
        },
        "device": str(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "iterations": iterations,
        "iterations_per_second": iterations / elapsed,
        "seconds_per_iteration": {k: v / iterations for k, v in phases.items()}
        | {"total": elapsed / iterations},
        "peak_memory_mib": peak,
        "peak_memory_kind": peak_kind,
    }


def cli(argv: list[str]) -> int:
    iterations = 20
    overrides = []
    for arg in argv:
        if arg.startswith("iterations="):
            iterations = int(arg.split("=", 1)[1])
        else:
            overrides.append(arg)
    result = bench(overrides, iterations=iterations)
    Path("bench.json").write_text(json.dumps(result, indent=2))
    per = result["seconds_per_iteration"]
    print(
        f"{result['iterations_per_second']:.2f} it/s at {result['config']}\n"
        f"  s/iteration: total {per['total']:.3f} = data {per['data']:.3f} + G forward "
        f"{per['g_forward']:.3f} + G backward {per['g_backward']:.3f} + D forward/backward "
        f"{per['d_forward_backward']:.3f}\n"
        f"  peak memory: {result['peak_memory_mib']:.0f} MiB ({result['peak_memory_kind']})\n"
        "  written to bench.json"
    )
    return 0


def main() -> int:
    return cli(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())

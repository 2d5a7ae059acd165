"""``spadelab bench`` / ``make bench``: speed, work and memory of the real training step.

Times ``SemanticSynthesis.training_step`` through the product path (a Lightning Trainer built
from the composed training config, with its precision and ``perf`` settings) at the demo
configuration; override anything Hydra-style. Usage::

    spadelab bench [OVERRIDES...] [iterations=10] [warmup=2] [repeats=3]
                   [compare='[{}, {trainer.precision: bf16-mixed}, {perf.compile: true}]']
                   [peak_tflops=989] [out=bench.json]

``compare=`` is a YAML list; each item is a mapping of overrides (``{}`` = the base config) or
a string of space-separated ``key=value`` overrides. The configs' repetitions alternate
(A B C A B C ...), so a machine that slows down mid-run slows all of them alike; each config
reports the median and spread of its repetitions and its speed-up over the first config.

Reported per config: seconds per iteration (whole iteration, and the part spent waiting for
data), FLOPs per iteration counted by ``torch.utils.flop_counter`` on one eager iteration,
achieved TFLOP/s (and the fraction of ``peak_tflops``), generator inference images/s, peak
memory. No test asserts on these numbers: time on shared machines varies 2-3x.
"""

from __future__ import annotations

import json
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

USAGE = (
    "usage: spadelab bench [OVERRIDES...] [iterations=N] [warmup=N] [repeats=N] "
    "[compare='[{}, {trainer.precision: bf16-mixed}]'] [peak_tflops=X] [out=bench.json]"
)
# Checkpoints, sample grids, logs and progress bars are not part of the step: the Trainer gets
# only the perf callback and the timer (EMA, when enabled, is: it runs inside training_step).
QUIET = ["logger=none"]
COUNTS = ("iterations", "warmup", "repeats")  # bench's own integer settings


def parse_compare(text: str) -> list[list[str]]:
    """``compare=`` text -> one list of overrides per config."""
    import yaml

    try:
        items = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ValueError(f"compare={text!r} is not YAML: {error}".replace("\n", " ")) from error
    if not isinstance(items, list) or not items:
        raise ValueError(
            f"compare={text!r} must be a non-empty list, e.g. "
            "compare='[{}, {trainer.precision: bf16-mixed}]'"
        )
    configs = []
    for item in items:
        if item is None:
            item = {}
        if isinstance(item, str):
            configs.append(item.split())
        elif isinstance(item, Mapping):
            configs.append([f"{k}={_yaml_value(v)}" for k, v in item.items()])
        else:
            raise ValueError(
                f"compare item {item!r} must be a mapping ({{trainer.precision: bf16-mixed}}) "
                "or a string of key=value overrides"
            )
    return configs


def _yaml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _spread(values: Sequence[float]) -> dict[str, float]:
    median = statistics.median(values)
    return {
        "median": median,
        "min": min(values),
        "max": max(values),
        # Half the range relative to the median: "+-x%" as printed.
        "spread": (max(values) - min(values)) / 2 / median if median > 0 else 0.0,
        "values": list(values),
    }


class _Case:
    """One config of the comparison: its module, data and the Trainer settings it fits with."""

    def __init__(self, name: str, overrides: list[str], run_dir: Path) -> None:
        from hydra.utils import instantiate

        from spadelab.config import compose_config
        from spadelab.module import SemanticSynthesis
        from spadelab.perf import performance_callbacks

        self.name = name
        self.overrides = overrides
        self.cfg = compose_config("train", [f"run_dir={run_dir}", *QUIET, *overrides])
        from omegaconf import OmegaConf

        self.plain = OmegaConf.to_container(self.cfg, resolve=True)
        torch.manual_seed(int(self.cfg.seed))
        self.datamodule = instantiate(self.cfg.data)
        self.cache_warm_seconds = _warm_data_cache(self.datamodule)
        self.module = SemanticSynthesis(self.plain)
        self.perf_callbacks = performance_callbacks(self.plain)
        self.iteration_seconds: list[float] = []
        self.data_seconds: list[float] = []
        self.inference_images_per_second: list[float] = []
        self.flops_per_iteration: int | None = None
        self.compiled: list[str] = []
        self.compile_fallback: str | None = None

    def trainer(self, batches: int, callbacks: list[pl.Callback]) -> pl.Trainer:
        from hydra.utils import instantiate

        from spadelab.config import without_name

        return instantiate(
            without_name(self.cfg.trainer),
            callbacks=callbacks,
            logger=False,
            max_epochs=1,
            max_steps=-1,
            limit_train_batches=batches,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=str(self.cfg.run_dir),
        )

    def time_training(self, iterations: int, warmup: int) -> None:
        """One repetition: ``warmup + iterations`` real training steps, the last ones timed."""
        timer = _StepTimer(warmup)
        trainer = self.trainer(warmup + iterations, [*self.perf_callbacks, timer])
        trainer.fit(self.module, datamodule=self.datamodule)
        if len(timer.iterations) < iterations:
            raise ValueError(
                f"bench: the train split of {self.name} has only {len(timer.iterations) + warmup}"
                f" batches for warmup={warmup} + iterations={iterations}; lower them or raise "
                "data.max_train_samples"
            )
        self.iteration_seconds.append(statistics.median(timer.iterations))
        self.data_seconds.append(statistics.median(timer.data))
        callback = self.perf_callbacks[0]
        self.compiled, self.compile_fallback = callback.compiled, callback.fallback_reason

    def count_flops(self) -> None:
        """FLOPs of one training iteration, counted on an uncompiled copy of this config."""
        from torch.utils.flop_counter import FlopCounterMode

        from spadelab.module import SemanticSynthesis
        from spadelab.perf import PerfCallback

        eager = SemanticSynthesis(self.plain)
        callback = self.perf_callbacks[0]
        settings = type(callback.settings)(
            **{**callback.settings.__dict__, "compile": False, "channels_last": False}
        )
        trainer = self.trainer(1, [PerfCallback(settings, callback.mixed, callback.device)])
        with FlopCounterMode(display=False) as counter:
            trainer.fit(eager, datamodule=self.datamodule)
        self.flops_per_iteration = int(counter.get_total_flops())

    @torch.no_grad()
    def time_inference(self, repeats: int = 5) -> None:
        """Generator images/s on the fixed validation batch at the training batch size."""
        from spadelab.perf import MIXED_PRECISIONS

        module = self.module
        device = module.device
        batch = self.datamodule.fixed_batch(int(self.cfg.data.batch_size))
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        label_map = module.label_map(batch)
        z = None
        if module.encoder is not None:
            z = torch.randn(label_map.shape[0], module.generator.z_dim, device=device)
        dtype = MIXED_PRECISIONS.get(str(self.cfg.trainer.precision))
        generator = module.generator.eval()
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            generator(label_map, z)  # warm-up (and compilation)
            _sync(device)
            start = time.perf_counter()
            for _ in range(repeats):
                generator(label_map, z)
            _sync(device)
        generator.train()
        elapsed = time.perf_counter() - start
        self.inference_images_per_second.append(repeats * label_map.shape[0] / elapsed)


def _warm_data_cache(datamodule: Any) -> float | None:
    """Render the cached synthetic scenes of the train split before timing starts.

    Otherwise the first repetition would pay for filling the cache (once per machine) and the
    comparison would time rendering instead of training. Returns the seconds it took (None:
    the dataset has no cache).
    """
    datamodule.setup("fit")
    dataset, indices = datamodule.train_set, None
    # Unwrap the datamodule's wrappers (GuardedDataset, Subset) down to the dataset itself.
    while not hasattr(dataset, "scenes") and hasattr(dataset, "dataset"):
        if isinstance(dataset, torch.utils.data.Subset):
            indices = list(dataset.indices)
        dataset = dataset.dataset
    if not getattr(dataset, "cache", False) or not hasattr(dataset, "scenes"):
        return None
    start = time.perf_counter()
    scenes = dataset.scenes()
    for i in indices if indices is not None else range(len(dataset)):
        scenes.sample(dataset.scene_index(i))
    return time.perf_counter() - start


class _StepTimer(pl.Callback):
    """Wall time of each training iteration after ``warmup`` of them.

    An iteration runs from the end of the previous one to its own end, so it includes the wait
    for its batch (``data``: loading, collation, Lightning's bookkeeping between steps).
    """

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.iterations: list[float] = []
        self.data: list[float] = []
        self._end: float | None = None
        self._start: float | None = None
        self._count = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        _sync(pl_module.device)
        now = time.perf_counter()
        self._count += 1
        # warmup >= 1, so every timed iteration has a previous end to start from.
        if self._count > self.warmup:
            self.data.append(now - self._end)
            self._start = self._end

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        _sync(pl_module.device)
        now = time.perf_counter()
        if self._count > self.warmup:
            self.iterations.append(now - self._start)
        self._end = now


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _peak_memory() -> dict[str, float]:
    memory = {"process_max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if torch.cuda.is_available():
        memory["cuda_max_memory_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return memory


def bench(
    overrides: list[str],
    iterations: int = 10,
    warmup: int = 2,
    repeats: int = 3,
    compare: list[list[str]] | None = None,
    peak_tflops: float | None = None,
) -> dict[str, Any]:
    if iterations < 1 or repeats < 1 or warmup < 0:
        raise ValueError(
            f"bench: iterations={iterations}, repeats={repeats} must be >= 1, warmup={warmup} >= 0"
        )
    # warmup 0 still leaves the first iteration untimed (it has no previous batch end).
    warmup = max(warmup, 1)
    configs = compare or [[]]
    with tempfile.TemporaryDirectory(prefix="spadelab-bench-") as tmp:
        cases = [
            _Case(" ".join(extra) or "base", [*overrides, *extra], Path(tmp) / f"case{i}")
            for i, extra in enumerate(configs)
        ]
        for case in cases:
            case.count_flops()
        for _ in range(repeats):
            for case in cases:
                case.time_training(iterations, warmup)
        for _ in range(repeats):
            for case in cases:
                case.time_inference()
    base_median = statistics.median(cases[0].iteration_seconds)
    base_inference = statistics.median(cases[0].inference_images_per_second)
    results = []
    for case in cases:
        seconds = _spread(case.iteration_seconds)
        batch_size = int(case.cfg.data.batch_size)
        tflops = case.flops_per_iteration / seconds["median"] / 1e12
        inference = _spread(case.inference_images_per_second)
        results.append(
            {
                "name": case.name,
                "overrides": case.overrides,
                "precision": str(case.cfg.trainer.precision),
                "perf": dict(case.plain.get("perf") or {}),
                "compiled": case.compiled,
                "compile_fallback": case.compile_fallback,
                "data_cache_warm_seconds": case.cache_warm_seconds,
                "seconds_per_iteration": seconds,
                "between_steps_seconds": _spread(case.data_seconds),
                "iterations_per_second": 1.0 / seconds["median"],
                "images_per_second": batch_size / seconds["median"],
                "speedup": base_median / seconds["median"],
                "flops_per_iteration": case.flops_per_iteration,
                "achieved_tflops": tflops,
                "fraction_of_peak": tflops / peak_tflops if peak_tflops else None,
                "inference_images_per_second": inference,
                "inference_speedup": inference["median"] / base_inference,
            }
        )
    first = cases[0].cfg
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return {
        "config": {
            "model": first.model.name,
            "data": first.data.name,
            "image_size": [int(first.data.crop_size)] * 2,
            "batch_size": int(first.data.batch_size),
            "ngf": int(first.model.generator.ngf),
            "overrides": overrides,
        },
        "device": torch.cuda.get_device_name() if device == "cuda" else _cpu_name(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "iterations": iterations,
        "warmup": warmup,
        "repeats": repeats,
        "peak_tflops": peak_tflops,
        "results": results,
        **_peak_memory(),
    }


def report(result: dict[str, Any]) -> str:
    config = result["config"]
    lines = [
        f"bench: {config['model']} on {config['data']} at {config['image_size'][0]}x"
        f"{config['image_size'][1]}, batch {config['batch_size']}, ngf {config['ngf']}; "
        f"{result['repeats']} repetitions x {result['iterations']} iterations, "
        f"{result['threads']} threads, {result['device']}"
    ]
    for r in result["results"]:
        s = r["seconds_per_iteration"]
        peak = f" ({100 * r['fraction_of_peak']:.1f}% of peak)" if r["fraction_of_peak"] else ""
        fallback = (
            f" [compile fell back: {r['compile_fallback']}]" if r["compile_fallback"] else ""
        )
        lines.append(
            f"  {r['name']}: {s['median']:.4f} s/iteration +-{100 * s['spread']:.0f}% "
            f"(between steps {r['between_steps_seconds']['median']:.4f}), "
            f"{r['iterations_per_second']:.2f} it/s, x{r['speedup']:.2f}; "
            f"{r['flops_per_iteration'] / 1e9:.2f} GFLOP/iteration, "
            f"{r['achieved_tflops']:.3f} TFLOP/s{peak}; inference "
            f"{r['inference_images_per_second']['median']:.1f} images/s "
            f"x{r['inference_speedup']:.2f}{fallback}"
        )
    memory = f"  peak memory: {result['process_max_rss_mib']:.0f} MiB process RSS"
    if "cuda_max_memory_allocated_mib" in result:
        memory += f", {result['cuda_max_memory_allocated_mib']:.0f} MiB CUDA"
    return "\n".join([*lines, memory])


def cli(argv: list[str]) -> int:
    from spadelab.commands.args import parse_float, parse_int, split_overrides
    from spadelab.runtime import command_error

    if any(arg in ("-h", "--help") for arg in argv):
        print(USAGE)
        return 0
    try:
        values, overrides = split_overrides(
            argv, "bench", (*COUNTS, "peak_tflops", "compare", "out")
        )
        options: dict[str, Any] = {k: parse_int(v, k) for k, v in values.items() if k in COUNTS}
        if "peak_tflops" in values:
            options["peak_tflops"] = parse_float(values["peak_tflops"], "peak_tflops")
        if "compare" in values:
            options["compare"] = parse_compare(values["compare"])
        out = Path(values.get("out", "bench.json"))
        result = bench(overrides, **options)
    except Exception as error:  # noqa: BLE001 - the one error path re-raises bugs
        return command_error("bench", error)
    out.write_text(json.dumps(result, indent=2))
    print(f"{report(result)}\n  written to {out}")
    return 0


def main() -> int:
    return cli(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())

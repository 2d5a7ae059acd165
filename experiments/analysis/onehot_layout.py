"""Does the memory layout of the one-hot label map change the generator's speed on CPU?

    .venv/bin/python experiments/analysis/onehot_layout.py [REPEATS] [override ...]

``data.labels.semantic_input`` builds the one-hot map as ``one_hot(...).permute(0, 3, 1, 2)``,
a tensor whose strides are channels-last. Convolutions that receive it may take a different CPU
kernel than for a contiguous (NCHW) tensor, and a channels-last output propagates through the
network. With instance maps (``data.use_instance``, the synthetic landscapes and Cityscapes) the
edge channel is concatenated and the result is contiguous anyway; without them (ADE20K,
``data=ade20k``) the permuted strides reach the generator. This times one generator forward +
backward (the work of a G step, without D) at the
given config (default: the demo's, ``scale=cpu``) for both layouts of the same values,
alternating the two in one run, and prints the median and spread of each and their ratio.
Issue 14 asks for this decision to be made deliberately and measured.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch
from omegaconf import OmegaConf

from spadelab.builders import build_generator, label_spec
from spadelab.config import compose_config
from spadelab.data.labels import semantic_input


def main() -> None:
    args = sys.argv[1:]
    repeats = int(args.pop(0)) if args and args[0].isdigit() else 15
    cfg = compose_config("train", ["scale=cpu", *args])
    # Only the sections that build the generator (logger paths need a Hydra run).
    container = {
        key: OmegaConf.to_container(cfg[key], resolve=True)
        for key in ("model", "norm", "modulation", "data", "scale")
    }
    torch.manual_seed(0)
    generator = build_generator(container)
    spec = label_spec(container["data"])
    size = int(container["data"]["crop_size"])
    batch = int(container["data"]["batch_size"])
    label = torch.randint(0, spec.label_nc, (batch, 1, size, size))
    instance = label.clone() if spec.use_instance else None  # one instance per class region
    strided = semantic_input(label, spec, instance)
    inputs = {"as built (permuted)": strided, "contiguous": strided.contiguous()}
    assert torch.equal(inputs["contiguous"], strided)
    print(
        f"threads {torch.get_num_threads()}, batch {batch}, {size}x{size}, "
        f"{spec.num_label_values} label channels; strides as built {tuple(strided.stride())}, "
        f"contiguous {tuple(inputs['contiguous'].stride())}"
    )

    def step(x: torch.Tensor) -> float:
        start = time.perf_counter()
        generator.zero_grad(set_to_none=True)
        generator(x).square().mean().backward()
        return time.perf_counter() - start

    for x in inputs.values():  # warm-up: allocator, kernel choice
        step(x)
        step(x)
    times: dict[str, list[float]] = {name: [] for name in inputs}
    for _ in range(repeats):
        for name, x in inputs.items():  # alternate, so drift hits both alike
            times[name].append(step(x))
    base = statistics.median(times["contiguous"])
    print("| input layout | median s / G forward+backward | min - max | vs contiguous |")
    print("|---|---:|---:|---:|")
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"| {name} | {median:.4f} | {min(values):.4f} - {max(values):.4f} | "
            f"{median / base:.2f}x |"
        )


if __name__ == "__main__":
    main()

"""The fast path as config: mixed precision, ``torch.compile``, channels-last, CUDA math modes.

``trainer.precision`` picks the arithmetic (``32-true``, ``bf16-mixed``, ``16-mixed`` on CUDA);
the ``perf`` config group picks the rest (``conf/perf/*.yaml``). :func:`performance_callbacks`
checks both before the Trainer exists and returns a callback that, in every training process
(DDP-spawned ranks included), prepares the networks:

- under mixed precision, normalization layers and the loss inputs stay float32: autocast runs
  the convolutions in bf16/fp16, but batch statistics and loss sums in those formats lose the
  small differences they are made of (bf16 keeps 8 bits of mantissa);
- ``perf.channels_last`` stores weights and activations as NHWC, the layout tensor cores and
  oneDNN convolutions prefer;
- ``perf.compile`` compiles G, D (and the VGG loss network) in place with
  ``nn.Module.compile()``: parameters stay where they are, so state-dict keys and checkpoints
  are unchanged (no ``_orig_mod.`` prefix) and manual optimization, EMA and resume see the
  same tensors. Where compile cannot run, training continues uncompiled after one warning line.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn as nn

from spadelab.config import without_name
from spadelab.runtime import ConfigError

log = logging.getLogger("spadelab.perf")

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
COMPILE_BACKENDS = ("inductor", "aot_eager", "eager")
MATMUL_PRECISIONS = ("highest", "high", "medium")
# Lightning's spellings of each arithmetic.
MIXED_PRECISIONS = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
FP16_ALIASES = ("16", "16-mixed", "fp16", "half")
BF16_ALIASES = ("bf16", "bf16-mixed")
# Layers whose statistics must be computed in float32 under autocast.
NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.GroupNorm,
    nn.LayerNorm,
)


@dataclass(frozen=True)
class PerfSettings:
    """The ``perf`` config group; its fields are its schema (an unknown key fails at start)."""

    compile: bool = False
    compile_mode: str = "default"
    # inductor generates kernels (C++ on CPU, Triton on GPU); aot_eager traces the same graphs
    # without code generation: for debugging, and for tests on machines where C++ builds crawl.
    compile_backend: str = "inductor"
    channels_last: bool = False
    matmul_precision: str = "high"  # float32 matmuls on CUDA: "high" allows TF32
    cudnn_benchmark: bool = True  # cuDNN picks the fastest kernels for fixed input sizes

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> PerfSettings:
        cfg = dict(without_name(cfg) or {})  # the group's name labels the file, not a setting
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - valid)
        if unknown:
            raise ConfigError(f"perf.{unknown[0]} is not a setting; valid: {sorted(valid)}")
        settings = cls(**cfg)
        for name in ("compile", "channels_last", "cudnn_benchmark"):
            if not isinstance(getattr(settings, name), bool):
                raise ConfigError(f"perf.{name}={getattr(settings, name)!r} must be true or false")
        if settings.compile_mode not in COMPILE_MODES:
            raise ConfigError(
                f"perf.compile_mode={settings.compile_mode!r} is unknown; choose one of "
                f"{list(COMPILE_MODES)}"
            )
        if settings.compile_backend not in COMPILE_BACKENDS:
            raise ConfigError(
                f"perf.compile_backend={settings.compile_backend!r} is unknown; choose one of "
                f"{list(COMPILE_BACKENDS)}"
            )
        if settings.matmul_precision not in MATMUL_PRECISIONS:
            raise ConfigError(
                f"perf.matmul_precision={settings.matmul_precision!r} is unknown; choose one of "
                f"{list(MATMUL_PRECISIONS)}"
            )
        return settings


def target_device(trainer_cfg: Mapping[str, Any]) -> str:
    """``cuda`` or ``cpu``: where ``trainer.accelerator`` will put the networks."""
    accelerator = str(trainer_cfg.get("accelerator", "auto")).lower()
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "cuda"
    if accelerator in ("gpu", "cuda"):
        raise ConfigError(
            f"trainer.accelerator={accelerator} but torch sees no CUDA GPU; "
            "use trainer.accelerator=cpu or a CUDA build of torch"
        )
    return "cpu"


def check_precision(precision: Any, device: str) -> None:
    """Refuse fp16 on CPU: Lightning would silently switch it to bf16 after a warning."""
    if str(precision) in FP16_ALIASES and device != "cuda":
        raise ConfigError(
            f"trainer.precision={precision} needs a CUDA GPU (fp16 autocast does not run on "
            "CPU); use trainer.precision=bf16-mixed"
        )


def is_mixed(precision: Any) -> bool:
    return str(precision) in FP16_ALIASES + BF16_ALIASES


def configure_backends(settings: PerfSettings, device: str) -> None:
    """Process-wide CUDA math settings (TF32 matmuls and convolutions, cuDNN autotuning)."""
    if device != "cuda":
        return
    torch.set_float32_matmul_precision(settings.matmul_precision)
    # TF32 convolutions follow the matmul choice: "highest" means true fp32 everywhere.
    torch.backends.cudnn.allow_tf32 = settings.matmul_precision != "highest"
    torch.backends.cudnn.benchmark = settings.cudnn_benchmark


# ---- hooks: top-level functions so that modules stay picklable (ddp_spawn) ----------------
def _float32_inputs(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)


class _Float32Norm:
    """Forward pre-hook: a norm layer sees float32 input, so its statistics are float32."""

    def __call__(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return _float32_inputs(module, args)


def _to_float32(value: Any) -> Any:
    if torch.is_tensor(value):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, list | tuple):
        return type(value)(_to_float32(v) for v in value)
    return value


class _Float32Outputs:
    """Forward hook: losses are computed from float32 discriminator / VGG features."""

    def __call__(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
        return _to_float32(output)


class _ChannelsLastInputs:
    """Forward pre-hook: 4-D inputs in NHWC, so the first convolution need not convert."""

    def __call__(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(
            a.contiguous(memory_format=torch.channels_last)
            if torch.is_tensor(a) and a.dim() == 4
            else a
            for a in args
        )


def keep_numerics_in_float32(networks: Mapping[str, nn.Module], outputs: tuple[str, ...]) -> int:
    """Float32 norms everywhere, float32 outputs for ``outputs``; returns the hooks added."""
    count = 0
    for name, network in networks.items():
        for layer in network.modules():
            if isinstance(layer, NORM_TYPES) or type(layer).__name__ == "SwitchableNorm":
                layer.register_forward_pre_hook(_Float32Norm())
                count += 1
        if name in outputs:
            network.register_forward_hook(_Float32Outputs())
            count += 1
    return count


def use_channels_last(networks: Mapping[str, nn.Module]) -> None:
    for network in networks.values():
        network.to(memory_format=torch.channels_last)
        network.register_forward_pre_hook(_ChannelsLastInputs())


def compile_unavailable_reason(device: str, backend: str = "inductor") -> str | None:
    """Why ``torch.compile`` cannot run here (None: it can), from compiling a tiny network.

    Compilation is lazy: a missing C++ compiler or Triton would only fail at the first training
    step. The probe fails here instead, where training can still fall back to eager mode.
    """
    import torch._dynamo  # heavy: only imported when compile is asked for

    if not torch._dynamo.is_dynamo_supported():
        return (
            f"torch {torch.__version__} has no torch.compile for Python {sys.version.split()[0]}"
        )
    probe = nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), nn.BatchNorm2d(2)).to(device)
    try:
        probe.compile(backend=backend)
        probe(torch.ones(2, 2, 4, 4, device=device, requires_grad=True)).sum().backward()
    except Exception as error:  # noqa: BLE001 - any failure means: run uncompiled
        text = " ".join(str(error).split())[:200]
        return f"{type(error).__name__}: {text}" if text else type(error).__name__
    finally:
        torch._dynamo.reset()  # the probe's graphs must not count towards the recompile limit
    return None


def networks_of(module: nn.Module) -> dict[str, nn.Module]:
    """The trained networks of a SemanticSynthesis module (and its frozen VGG), by role."""
    networks: dict[str, nn.Module] = {}
    for name in ("generator", "discriminator", "encoder", "generator_ema", "encoder_ema"):
        network = getattr(module, name, None)
        if isinstance(network, nn.Module):
            networks[name] = network
    for vgg in getattr(module, "_vgg", []):
        networks["vgg"] = vgg
    return networks


class PerfCallback(pl.Callback):
    """Prepares the networks in ``setup``: once per process, before DDP wraps them."""

    def __init__(self, settings: PerfSettings, mixed: bool, device: str) -> None:
        self.settings = settings
        self.mixed = mixed
        self.device = device
        self.compiled: list[str] = []
        self.fallback_reason: str | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if getattr(pl_module, "_spadelab_perf_applied", False):
            return  # a second fit of the same module (bench repetitions): already prepared
        pl_module._spadelab_perf_applied = True
        configure_backends(self.settings, self.device)
        networks = networks_of(pl_module)
        if self.mixed:
            keep_numerics_in_float32(networks, outputs=("discriminator", "vgg"))
        if self.settings.channels_last:
            use_channels_last(networks)
        if self.settings.compile:
            backend = self.settings.compile_backend
            self.fallback_reason = compile_unavailable_reason(self.device, backend)
            if self.fallback_reason is not None:
                log.warning(
                    "perf.compile=true: running uncompiled, torch.compile is unavailable "
                    "here (%s)",
                    self.fallback_reason,
                )
                return
            # Modes are inductor options; other backends take none.
            mode = self.settings.compile_mode
            mode = None if mode == "default" or backend != "inductor" else mode
            # EMA copies only run in inference (samples, evaluation): compiling them would
            # add compile time for a few calls.
            for name in ("generator", "discriminator", "encoder", "vgg"):
                if name in networks:
                    networks[name].compile(backend=backend, mode=mode)
                    self.compiled.append(name)


def performance_callbacks(cfg: Mapping[str, Any]) -> list[pl.Callback]:
    """Check precision and ``perf`` against the device now; the callback that applies them."""
    trainer_cfg = cfg.get("trainer") or {}
    device = target_device(trainer_cfg)
    precision = trainer_cfg.get("precision", "32-true")
    check_precision(precision, device)
    settings = PerfSettings.from_config(cfg.get("perf"))
    return [PerfCallback(settings, mixed=is_mixed(precision), device=device)]

"""What every entry point shares: config checks, readable errors, run directories."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from hydra.errors import HydraException, InstantiationException
from hydra.utils import get_method
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from spadelab.atomic import atomic_path

log = logging.getLogger("spadelab")


class ConfigError(ValueError):
    pass


class TrainingDiverged(RuntimeError):
    """A loss term or a weight became NaN/inf; the message is what a sweep reports."""


class RunDirBusy(RuntimeError):
    """Another live process holds the run dir's lock."""


class CheckpointWriteError(RuntimeError):
    """A checkpoint did not reach the disk."""


# Errors that describe bad input or a failed run: shown as one line, without a traceback.
USER_ERRORS = (
    ValueError,
    FileNotFoundError,
    HydraException,
    TrainingDiverged,
    RunDirBusy,
    CheckpointWriteError,
    PermissionError,
)

# Run dirs this process has claimed (locked, config written): only a failure after the claim
# writes FAILED.json there, so a refused start never marks a good run dir as failed.
_CLAIMED: dict[str, IO[str]] = {}
_STARTED: set[str] = set()


def validate_targets(cfg: DictConfig | dict, path: str = "") -> None:
    """Fail at start, naming the key, when a ``_target_`` node has a key its callable lacks.

    Hydra checks groups and choices at compose time; this adds the same check for the
    arguments of every instantiated class, so a typo such as ``model.generator.ngff`` fails
    before any data is loaded instead of deep inside ``instantiate``.
    """
    if isinstance(cfg, DictConfig | dict):
        items = cfg.items()
        target = cfg.get("_target_") if hasattr(cfg, "get") else None
        if target is not None:
            try:
                fn = get_method(str(target))
            except Exception as error:  # noqa: BLE001
                raise ConfigError(
                    f"{path or '<root>'}._target_={target} cannot be imported"
                ) from error
            # A config group's root (norm, trainer, ...) states its choice as ``name``, which
            # is dropped before instantiation (config.without_name); deeper nodes have none.
            group_root = bool(path) and "." not in path and "[" not in path
            _check_signature(fn, cfg, path, {"name"} if group_root else set())
        for key, value in items:
            if isinstance(value, DictConfig | dict | ListConfig | list):
                validate_targets(value, f"{path}.{key}" if path else str(key))
    elif isinstance(cfg, ListConfig | list):
        for i, value in enumerate(cfg):
            validate_targets(value, f"{path}[{i}]")


def _check_signature(fn: Callable, cfg: Any, path: str, extra: set[str]) -> None:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    params = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        # Our classes that forward **kwargs (e.g. UnpoolSPADEGenerator) are checked through their
        # base. Third-party ones may forward them anywhere (WandbLogger: to wandb.init, so
        # group/tags/job_type are valid): they are not checked.
        bases = getattr(fn, "__mro__", ())[1:2]
        if not bases or not str(getattr(fn, "__module__", "")).startswith("spadelab."):
            return
        params = {**inspect.signature(bases[0]).parameters, **params}
    valid = {name for name in params if name not in ("self", "args", "kwargs")} | extra
    for key in cfg:
        if str(key).startswith("_") or key in valid:
            continue
        from spadelab.config import renamed_key_message

        renamed = renamed_key_message(f"{path}.{key}")
        if renamed:
            raise ConfigError(renamed)
        raise ConfigError(
            f"unknown key {path}.{key} for {fn.__module__}.{fn.__qualname__}; "
            f"valid keys: {', '.join(sorted(valid))}"
        )


def check_unknown_keys(cfg: DictConfig | Mapping[str, Any]) -> None:
    """Fail, listing the valid keys, when a plain config section has a key its schema lacks.

    Hydra's struct mode refuses a typo'd plain key but accepts it with ``+``
    (``+loss.lambda_fet=0``), and an experiments row can set it too; ``_target_`` nodes are
    checked against signatures by :func:`validate_targets`. This checks the plain sections
    (``loss``, ``optim``, ``ema``, ``scale``, ``eval``, ``experiment`` and the top level of
    train.yaml) against the dataclasses in :mod:`spadelab.config`, keys and value types.
    """
    from spadelab.config import SECTION_SCHEMAS, TOP_LEVEL_KEYS, config_name

    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=False)  # interpolations stay strings
    top_level = TOP_LEVEL_KEYS.get(config_name(cfg))
    unknown = sorted(set(cfg) - top_level) if top_level else []
    if unknown:
        raise ConfigError(
            f"unknown key {unknown[0]}; valid top-level keys: {', '.join(sorted(top_level))}"
        )
    for section, schema in SECTION_SCHEMAS.items():
        node = cfg.get(section)
        if not isinstance(node, Mapping):
            continue
        _check_fields(node, schema, section)
        try:
            # Interpolations (${scale.decay_start_epoch}) are left to resolution time.
            values = {k: v for k, v in node.items() if not _is_interpolation(v)}
            OmegaConf.merge(OmegaConf.structured(schema), values)
        except OmegaConfBaseException as error:
            parts = str(getattr(error, "full_key", None) or "?").split(".")
            value: Any = node
            owner: Any = schema
            for part in parts:
                value = value.get(part) if isinstance(value, Mapping) else None
                if part != parts[-1]:
                    owner = next(
                        (f.default_factory for f in dataclasses.fields(owner) if f.name == part),
                        owner,
                    )
            raise ConfigError(
                f"{section}.{'.'.join(parts)}={value!r} is not a valid value (expected "
                f"{_field_type(owner, parts[-1])})"
            ) from None


def _check_fields(node: Mapping[str, Any], schema: type, path: str) -> None:
    fields = {f.name: f for f in dataclasses.fields(schema)}
    unknown = sorted(set(node) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key {path}.{unknown[0]}; valid keys of {path}: {', '.join(sorted(fields))}"
        )
    for name, value in node.items():
        nested = fields[name].default_factory
        if isinstance(value, Mapping) and dataclasses.is_dataclass(nested):
            _check_fields(value, nested, f"{path}.{name}")


def _is_interpolation(value: Any) -> bool:
    return isinstance(value, str) and "${" in value


def _field_type(schema: type, name: str) -> str:
    for field in dataclasses.fields(schema):
        if field.name == name:
            return str(field.type).replace("typing.", "")
    return "another type"


def check_finite_losses(terms: Mapping[str, Any], prefix: str, step: int) -> None:
    """Stop training at the first NaN/inf loss term, naming the step and the term."""
    import torch

    values = torch.stack([v.detach().float() for v in terms.values()])
    if bool(torch.isfinite(values).all()):
        return
    for name, value in terms.items():
        if not torch.isfinite(value).all():
            raise TrainingDiverged(f"diverged at step {step} ({prefix}{name}={value.item():g})")


def resolve_device(device: str) -> str:
    """``device=`` checked once, so every entry point fails the same clear way."""
    import torch

    try:
        parsed = torch.device(str(device))
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device={device} is not a torch device; use cpu, cuda or cuda:N"
        ) from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device} but this machine has no CUDA GPU; use device=cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device} but only {torch.cuda.device_count()} GPU(s) exist; "
                "use cuda:0..cuda:N-1"
            )
    elif parsed.type != "cpu":
        raise ValueError(f"device={device} is not supported; use cpu or cuda[:N]")
    return str(parsed)


def claim_run_dir(run_dir: Path) -> None:
    """Lock ``run_dir`` for this process's life: one run per run dir.

    An ``fcntl`` lock dies with its process, so a run killed with -9 never blocks its resume.
    """
    key = str(run_dir.resolve())
    if key in _CLAIMED:
        return
    from spadelab.atomic import LockHeld, try_pid_lock

    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handle = try_pid_lock(run_dir / ".lock")
    except OSError as error:
        raise ConfigError(
            f"run_dir={run_dir} cannot be written ({error.strerror or error}); choose another "
            "run_dir or fix its permissions"
        ) from None
    except LockHeld as held:
        raise RunDirBusy(
            f"run_dir={run_dir} is in use by another spadelab process (pid {held.holder}); "
            "wait for it to finish or choose another run_dir"
        ) from None
    if not os.access(run_dir, os.W_OK):
        handle.close()
        raise ConfigError(
            f"run_dir={run_dir} is not writable; choose another run_dir or fix its permissions"
        )
    _CLAIMED[key] = handle
    _STARTED.add(key)


def release_run_dir(run_dir: Path, succeeded: bool = False) -> None:
    """Drop the lock; after a success a later failed start no longer counts as this run's."""
    if succeeded:
        _STARTED.discard(str(run_dir.resolve()))
    handle = _CLAIMED.pop(str(run_dir.resolve()), None)
    if handle is not None:
        handle.close()  # closing drops the flock


def describe_error(error: BaseException) -> str:
    """The innermost message worth showing, for errors wrapped by Hydra's instantiate."""
    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    if isinstance(error, MissingMandatoryValue):
        key = getattr(error, "full_key", None) or "?"
        return f"{key} is required; pass {key}=... on the command line"
    if isinstance(error, PermissionError):
        return (
            f"permission denied writing {error.filename}; make it writable or choose another path"
        )
    if type(error).__name__ == "MissingConfigException":
        # "Could not find 'data/x'", the options one per line, then the search path.
        text = str(error).split("Config search path")[0].splitlines()
        options = [line.strip() for line in text[1:] if line.strip()]
        if options and options[0].endswith(":"):
            return f"{text[0]}; {options[0]} {', '.join(options[1:])}"
        return text[0]
    message = str(error).strip().splitlines()
    # OmegaConf's context lines ("full_key: ...", "object_type=...") repeat the first line.
    message = [
        line for line in message if not line.strip().startswith(("full_key:", "object_type="))
    ]
    if message and "in DataLoader worker process" in message[0]:
        # The worker's exception re-raised with its traceback inside: keep its last line.
        last = message[-1].strip()
        message = [last.split(": ", 1)[1] if ": " in last else last]
    text = " ".join(line.strip() for line in message if line.strip()) or type(error).__name__
    return text if is_user_error(error) else f"{type(error).__name__}: {text}"


def command_error(command: str, error: BaseException) -> int:
    """The commands' one error path: bad input becomes one line ``spadelab COMMAND: error:
    ...`` on stderr and exit code 2, or 1 when the data itself is bad (unreadable or corrupt
    files); a bug is re-raised with its traceback, as is everything under SPADELAB_DEBUG=1."""
    from spadelab.data.check import DataError

    if os.environ.get("SPADELAB_DEBUG") or not (
        is_user_error(error) or isinstance(error, DataError | FileExistsError)
    ):
        raise error
    print(f"spadelab {command}: error: {describe_error(error)}", file=sys.stderr)
    chain = [error]
    while chain[-1].__cause__ is not None:
        chain.append(chain[-1].__cause__)
    root = chain[-1]
    # Composition (an unknown config choice, a bad override) reads no data file; instantiate
    # only wraps what the data classes raised.
    composing = [e for e in chain if isinstance(e, HydraException)]
    if any(not isinstance(e, InstantiationException) for e in composing):
        return 2
    path_errors = (FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError)
    corrupt = isinstance(root, OSError) and not isinstance(root, path_errors)
    return 1 if isinstance(root, DataError) or corrupt else 2


def is_user_error(error: BaseException) -> bool:
    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    # Lightning's MisconfigurationException: a trainer.* setting it refuses, already worded.
    lightning_config = type(error).__name__ == "MisconfigurationException"
    return (
        isinstance(error, (*USER_ERRORS, MissingMandatoryValue)) or lightning_config
    ) and not isinstance(error, NotImplementedError | RecursionError)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomic write: a crash never leaves half a metrics file behind."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))


def save_config(cfg: DictConfig, run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))


def run_command(name: str, fn: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """Run an entry point; bad input becomes one line on stderr and exit code 2.

    In a Hydra multirun a failing job writes ``FAILED.json`` into its run dir and returns, so
    one bad row never stops a sweep.
    """
    try:
        return fn(cfg)
    except Exception as error:  # noqa: BLE001 - every error is reported, then re-raised or exited
        message = describe_error(error)
        if slurm_job_id():
            # The report's `failed:` line then names the job: `sacct -j` and its log find it.
            message = f"slurm job {slurm_job_id()}: {message}"
        run_dir = _run_dir_of(cfg)
        claimed = run_dir is not None and str(Path(run_dir).resolve()) in _STARTED
        if run_dir and not isinstance(error, RunDirBusy) and (claimed or _in_multirun()):
            # The original error matters more than a failure to record it.
            with contextlib.suppress(Exception):
                write_json(
                    Path(str(run_dir)) / "FAILED.json",
                    {"error": message, "traceback": traceback.format_exc()},
                )
        if _in_multirun():
            log.error("spadelab %s: run failed: %s", name, message)
            return None
        if is_user_error(error):
            print(f"spadelab {name}: error: {message}", file=sys.stderr)
            raise SystemExit(2) from None
        raise


def _run_dir_of(cfg: Any) -> str | None:
    if not isinstance(cfg, DictConfig):
        return None
    try:
        value = cfg.get("run_dir")
    except OmegaConfBaseException:
        return None
    return str(value) if value else None


def slurm_job_id() -> str | None:
    """``ARRAYJOB_TASK`` (or the plain job id) when running inside a Slurm job, else None."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID")


def _in_multirun() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    except Exception:  # noqa: BLE001
        return False


def check_overrides(name: str, config_name: str, args: list[str]) -> None:
    """Before Hydra starts: a typo'd key on the command line fails in one line listing the
    valid keys, where Hydra would suggest adding it with ``+`` (which then trains silently);
    ``+``-added keys are checked by :func:`check_unknown_keys` the same way.

    Other composition errors are shown in one line too; multiruns and Hydra flags (``-m``,
    ``--cfg``) are left to Hydra.
    """
    if any(arg.startswith("-") for arg in args):
        return
    overrides = [a for a in args if not a.startswith(("hydra.", "hydra/", "+hydra", "~hydra"))]
    from hydra.core.global_hydra import GlobalHydra

    from spadelab.config import compose_config, renamed_key_message

    if GlobalHydra.instance().is_initialized():
        return
    try:
        cfg = compose_config(config_name, overrides)
        check_unknown_keys(cfg)
        return
    except ConfigError as error:
        message = str(error)
    except Exception as error:  # noqa: BLE001 - only struct errors are ours to explain
        cause = error.__cause__ or error
        if "not in struct" not in str(cause):
            # Hydra's own composition errors (an unknown choice, a bad override) in one line.
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            print(f"spadelab {name}: error: {' '.join(lines)}", file=sys.stderr)
            raise SystemExit(2) from None
        key = str(getattr(cause, "full_key", "") or "")
        if renamed_key_message(key):  # model.generator.input: the new key, not the valid list
            print(f"spadelab {name}: error: {renamed_key_message(key)}", file=sys.stderr)
            raise SystemExit(2) from None
        parent, _, leaf = key.rpartition(".")
        rest = [a for a in overrides if not a.lstrip("+~").startswith(f"{key}=")]
        try:
            node = compose_config(config_name, rest)
            node = OmegaConf.select(node, parent) if parent else node
            valid = sorted(str(k) for k in node if not str(k).startswith("_"))
        except Exception:  # noqa: BLE001
            return
        where = f"valid keys of {parent}" if parent else "valid top-level keys"
        message = f"unknown key {key}; {where}: {', '.join(valid)}"
    print(f"spadelab {name}: error: {message}", file=sys.stderr)
    raise SystemExit(2)

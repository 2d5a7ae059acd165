"""What every entry point shares: config checks, readable errors, run directories."""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.errors import HydraException, InstantiationException
from hydra.utils import get_method
from omegaconf import DictConfig, ListConfig, OmegaConf

from spadelab.atomic import atomic_path

log = logging.getLogger("spadelab")

# Errors that describe bad input: shown as one line, without a traceback.
USER_ERRORS = (ValueError, FileNotFoundError, HydraException)


class ConfigError(ValueError):
    pass


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
            _check_signature(fn, cfg, path)
        for key, value in items:
            if isinstance(value, DictConfig | dict | ListConfig | list):
                validate_targets(value, f"{path}.{key}" if path else str(key))
    elif isinstance(cfg, ListConfig | list):
        for i, value in enumerate(cfg):
            validate_targets(value, f"{path}[{i}]")


def _check_signature(fn: Callable, cfg: Any, path: str) -> None:
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
    valid = {name for name in params if name not in ("self", "args", "kwargs")}
    for key in cfg:
        if str(key).startswith("_") or key in valid:
            continue
        raise ConfigError(
            f"unknown key {path}.{key} for {fn.__module__}.{fn.__qualname__}; "
            f"valid keys: {', '.join(sorted(valid))}"
        )


def describe_error(error: BaseException) -> str:
    """The innermost message worth showing, for errors wrapped by Hydra's instantiate."""
    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    message = str(error).strip().splitlines()
    text = " ".join(line.strip() for line in message if line.strip()) or type(error).__name__
    return text if isinstance(error, USER_ERRORS) else f"{type(error).__name__}: {text}"


def is_user_error(error: BaseException) -> bool:
    while isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    return isinstance(error, USER_ERRORS) and not isinstance(
        error, NotImplementedError | RecursionError
    )


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
        run_dir = cfg.get("run_dir") if isinstance(cfg, DictConfig) else None
        if run_dir:
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


def _in_multirun() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    except Exception:  # noqa: BLE001
        return False

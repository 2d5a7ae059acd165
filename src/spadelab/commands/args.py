"""``key=value`` arguments of the commands that are not Hydra apps (Hydra's look, no Hydra).

- :func:`parse_args`: a command's own settings only (studio, study, report); an unknown key
  fails in one line that names it and the valid ones.
- :func:`split_overrides`: a command's own settings, and the rest as Hydra overrides of the
  config it composes (params, bench, sweep, data, import-official).

Values stay strings; :func:`parse_value` reads YAML (``seeds=[0,1]``, ``dry_run=true``).
Errors are ``ValueError``s, shown by ``runtime.command_error``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml


def parse_args(
    argv: Sequence[str], command: str, valid: Sequence[str], prefixes: Sequence[str] = ()
) -> tuple[dict[str, str], list[str]]:
    """``["a=1", "x"]`` -> ({"a": "1"}, ["x"]). Keys starting with a prefix are passed through."""
    values: dict[str, str] = {}
    positional: list[str] = []
    for item in argv:
        if "=" not in item:
            positional.append(item)
            continue
        key, value = item.split("=", 1)
        if key not in valid and not any(key.startswith(p) for p in prefixes):
            raise ValueError(f"unknown setting {key}=; valid settings: {', '.join(valid)}")
        values[key] = value
    return values, positional


def split_overrides(
    argv: Sequence[str], command: str, options: Sequence[str], *, dotted_only: bool = False
) -> tuple[dict[str, str], list[str]]:
    """``["iterations=5", "model=pix2pixhd"]`` -> ({"iterations": "5"}, ["model=pix2pixhd"]):
    keys in ``options`` are the command's own; every other argument is a Hydra override.

    ``dotted_only``: for a command that fixes the config groups itself (import-official), only
    dotted keys (``data.dataset.root=...``) are overrides, so a typo'd setting such as
    ``datset=`` fails here, listing the valid settings, instead of as a Hydra override.
    """
    values: dict[str, str] = {}
    overrides: list[str] = []
    for item in argv:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(
                f"argument {item!r} is not key=value; `spadelab {command}` takes its settings "
                "and Hydra overrides as key=value"
            )
        if key in options:
            values[key] = value
        elif dotted_only and "." not in key:
            raise ValueError(
                f"unknown setting {key}=; valid settings: {', '.join(options)}, and dotted "
                "Hydra overrides of the stored config (e.g. data.dataset.root=PATH)"
            )
        else:
            overrides.append(item)
    return values, overrides


def parse_value(value: str) -> Any:
    """A value as YAML reads it: ``[0,1]`` a list, ``true`` a bool, ``3`` an int, ``''`` None."""
    return yaml.safe_load(value) if value else None


def parse_list(value: str) -> list[str]:
    """``[A,B]`` or ``A`` -> a list of strings (Hydra's list syntax)."""
    value = value.strip()
    if value.startswith("[") and value.endswith("]"):
        return [item.strip() for item in value[1:-1].split(",") if item.strip()]
    return [value]


def parse_bool(value: str, key: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError(f"{key}={value} must be true or false")


def parse_float(value: str, key: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{key}={value} must be a number") from None


def parse_int(value: str, key: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{key}={value} must be an integer") from None

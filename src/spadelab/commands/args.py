"""``key=value`` arguments for the studio and study commands (Hydra-style, without Hydra).

These commands take no config group, so a small parser with the same look is enough: unknown
keys and missing values fail in one line that names the key and the valid ones.
"""

from __future__ import annotations

from collections.abc import Sequence


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
            raise ValueError(
                f"spadelab {command}: unknown setting {key}=; valid settings: {', '.join(valid)}"
            )
        values[key] = value
    return values, positional


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


def parse_int(value: str, key: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{key}={value} must be an integer") from None

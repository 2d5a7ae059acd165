"""The commands' one ``key=value`` parser (``commands.args``) and one error path
(``runtime.command_error``)."""

from __future__ import annotations

import pytest

from spadelab.commands.args import parse_args, parse_float, parse_value, split_overrides
from spadelab.data.check import DataError
from spadelab.runtime import command_error


def test_split_overrides_separates_own_settings_from_hydra_overrides() -> None:
    values, overrides = split_overrides(
        ["iterations=5", "model=pix2pixhd", "+loss.x=1", "out=a=b"], "bench", ["iterations", "out"]
    )
    assert values == {"iterations": "5", "out": "a=b"}
    assert overrides == ["model=pix2pixhd", "+loss.x=1"]


def test_split_overrides_dotted_only_refuses_an_unknown_plain_key() -> None:
    argv = ["out=x.ckpt", "data.dataset.root=/d", "+data.extra=1"]
    values, overrides = split_overrides(argv, "import-official", ("out",), dotted_only=True)
    assert values == {"out": "x.ckpt"} and overrides == ["data.dataset.root=/d", "+data.extra=1"]
    with pytest.raises(ValueError, match=r"unknown setting ot=; valid settings: out, ckpt, and"):
        split_overrides(["ot=x"], "import-official", ("out", "ckpt"), dotted_only=True)
    # Without it a plain key is a Hydra override (a config group choice such as model=...).
    assert split_overrides(["ot=x"], "params", ("out",)) == ({}, ["ot=x"])


def test_split_overrides_refuses_a_bare_word() -> None:
    with pytest.raises(ValueError, match=r"^argument 'verbose' is not key=value; `spadelab data"):
        split_overrides(["verbose"], "data check", ())


def test_parse_args_names_the_valid_settings() -> None:
    assert parse_args(["port=1", "DIR"], "study serve", ["host", "port"]) == (
        {"port": "1"},
        ["DIR"],
    )
    with pytest.raises(ValueError, match=r"^unknown setting colour=; valid settings: host, port$"):
        parse_args(["colour=red"], "study serve", ["host", "port"])


def test_values() -> None:
    assert (
        parse_value("[0,1]") == [0, 1] and parse_value("true") is True and parse_value("") is None
    )
    assert parse_float("0.5", "prefer_a") == 0.5
    with pytest.raises(ValueError, match=r"^prefer_a=x must be a number$"):
        parse_float("x", "prefer_a")


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (ValueError("n=0 must be >= 1"), 2, "spadelab params: error: n=0 must be >= 1"),
        (FileNotFoundError("ckpt=x does not exist"), 2, "spadelab params: error: ckpt=x does"),
        (DataError("2 unreadable images"), 1, "spadelab params: error: 2 unreadable images"),
    ],
)
def test_command_error_is_one_line_with_its_exit_code(
    capsys: pytest.CaptureFixture[str], error: Exception, code: int, line: str
) -> None:
    assert command_error("params", error) == code
    err = capsys.readouterr().err
    assert err.startswith(line) and len(err.strip().splitlines()) == 1


def test_command_error_reraises_bugs_and_everything_under_debug(monkeypatch) -> None:
    with pytest.raises(KeyError):
        command_error("params", KeyError("bug"))
    monkeypatch.setenv("SPADELAB_DEBUG", "1")
    with pytest.raises(ValueError):
        command_error("params", ValueError("bad input"))


def test_command_error_of_an_unknown_config_choice(capsys: pytest.CaptureFixture[str]) -> None:
    from spadelab.config import compose_config

    with pytest.raises(Exception) as caught:
        compose_config("train", ["run_dir=.", "norm=batchh"])
    assert command_error("params", caught.value) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("spadelab params: error: In 'train': Could not find 'norm/batchh'; ")
    assert "Available options in 'norm': batch, instance" in line


def test_command_error_of_a_wrapped_composition_error(capsys: pytest.CaptureFixture[str]) -> None:
    """``spadelab sweep`` wraps Hydra's error in its own sentence: still a usage error."""
    from spadelab.config import compose_config
    from spadelab.runtime import ConfigError

    try:
        compose_config("train", ["run_dir=.", "norm=batchy"])
    except Exception as error:  # noqa: BLE001
        wrapped = ConfigError(f"the sweep's overrides do not compose: {error}")
        wrapped.__cause__ = error
    assert command_error("sweep", wrapped) == 2
    capsys.readouterr()

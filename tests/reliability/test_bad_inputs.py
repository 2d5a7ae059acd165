"""The bad-input table of issue 11: every case fails with exit code 2 and ONE line that names
the setting or file (no traceback, nothing silent, nothing misleading).

Cases run in this process through ``spadelab.cli.main`` (a subprocess per case would cost ~5 s
of interpreter start each). ``{run}``, ``{tmp}``, ``{labels}`` and ``{bad_*}`` are filled in
at run time. Run ``pytest tests/reliability/test_bad_inputs.py -q`` for the count.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from cases import SMOKE, error_lines, run_cli

from spadelab.config import SECTION_SCHEMAS

BAD_CKPT = {
    "zero": "is empty (0 bytes)",
    "truncated": "truncated or not a torch checkpoint",
    "random": "is not a readable checkpoint",
    "malicious": "refused: loading could run code",
    "nonfinite": "non-finite weights",
    "pickle": "is not a readable checkpoint",
}


def typo_cases() -> list[tuple[str, list[str], str]]:
    """A typo of every key of every plain section, plain and ``+``-added."""
    cases = []
    for section in ("loss", "optim", "ema", "scale"):
        for field in dataclasses.fields(SECTION_SCHEMAS[section]):
            key = f"{section}.{field.name}x"
            expected = f"unknown key {key}; valid keys of {section}: "
            cases.append(("train", [f"{key}=1"], expected))
            cases.append(("train", [f"+{key}=1"], expected))
    return cases


TRAIN_CASES = [
    (
        ["loss.lambda_fet=0"],
        "unknown key loss.lambda_fet; valid keys of loss: ",
    ),
    (["+loss.lambda_fet=0"], "unknown key loss.lambda_fet; valid keys of loss: "),
    (["model.generator.ngff=3"], "unknown key model.generator.ngff; valid keys of"),
    (["+model.generator.ngff=3"], "unknown key model.generator.ngff for"),
    (["+foo=1"], "unknown key foo; valid top-level keys"),
    (["optim.lr_g=abc"], "optim.lr_g='abc' is not a valid value (expected float)"),
    (["ema.decay=abc"], "ema.decay='abc' is not a valid value"),
    (["ema.enabled=maybe"], "ema.enabled='maybe' is not a valid value"),
    (["scale.max_epochs=abc"], "scale.max_epochs='abc' is not a valid value"),
    (["loss.lambda_feat=abc"], "loss.lambda_feat='abc' is not a valid value"),
    (["data.batch_size=abc"], "data.batch_size='abc' must be an integer >= 1"),
    (["data.batch_size=0"], "data.batch_size=0 must be an integer >= 1"),
    (["data.max_train_samples=0"], "data.max_train_samples=0 must be an integer >= 1"),
    (["data.num_workers=-1"], "data.num_workers=-1 must be an integer >= 0"),
    (["data.crop_size=abc"], "data.crop_size='abc' must be an integer"),
    (["data.on_bad_file=maybe"], "data.on_bad_file=maybe must be error or skip"),
    (["trainer.devices=3"], "trainer.devices=3 on CPU needs a spawning strategy"),
    (["trainer.devices=0"], "trainer.devices=0 must be >= 1"),
    (["trainer.accelerator=gpu"], "GPU"),
    (["ema.enabled=true", "ema.decay=1.5"], "ema.decay=1.5 must be in [0, 1)"),
    (["seed=abc"], "seed='abc' must be an integer"),
    (["data=nosuch"], "Could not find 'data/nosuch'"),
    (["data=folder"], "data.label_nc is required"),
    (["data=folder", "data.label_nc=3"], "data.dataset.root is required"),
    (["ckpt_path={tmp}/nope.ckpt"], "nope.ckpt does not exist; pass a run dir"),
    (["ckpt_path=auto", "run_dir={truncated_run}"], "truncated or not a torch checkpoint"),
    (["run_dir={tmp}/a_file/run"], "cannot be written"),
    *[([f"ckpt_path={{bad_{name}}}"], message) for name, message in BAD_CKPT.items()],
]

SYNTH_CASES = [
    (["input={labels}"], "ckpt is required"),
    (["ckpt={run}"], "input is required"),
    (["ckpt={run}", "input={tmp}/nope"], "does not exist"),
    (["ckpt={run}", "input={tmp}/empty"], "holds no label images"),
    (["ckpt={run}", "input={tmp}/rgb.png"], "is a RGB image"),
    (["ckpt={run}", "input={tmp}/text.png"], "is not a readable image"),
    (["ckpt={run}", "input={tmp}/zero.png"], "is not a readable image"),
    (["ckpt={run}", "input={tmp}/out_of_range.png"], "200"),
    (["ckpt={run}", "input={labels}", "n_samples=0"], "n_samples=0 must be >= 1"),
    (["ckpt={run}", "input={labels}", "n_samples=2"], "n_samples > 1 needs"),
    (["ckpt={run}", "input={labels}", "batch_size=0"], "batch_size=0 must be >= 1"),
    (["ckpt={run}", "input={labels}", "precision=fp8"], "precision=fp8 is not supported"),
    (["ckpt={run}", "input={labels}", "device=tpu"], "device=tpu is not"),
    (["ckpt={run}", "input={labels}", "device=gpu"], "device=gpu is not a torch device"),
    (["ckpt={run}", "input={labels}", "style={labels}/l0.png"], "needs a model trained with"),
    (["ckpt={run}", "input={labels}", "instance={tmp}/nope.png"], "instance="),
    (["ckpt={run}", "input={labels}", "outputx=1"], "unknown key outputx"),
    (["ckpt={run}", "input={labels}", "+outputx=1"], "unknown key outputx"),
    (["ckpt={tmp}/nope", "input={labels}"], "does not exist"),
    (["ckpt={tmp}/empty", "input={labels}"], "directory without checkpoints"),
    *[([f"ckpt={{bad_{n}}}", "input={labels}"], m) for n, m in BAD_CKPT.items()],
]

EVAL_CASES = [
    ([], "ckpt is required"),
    (["ckpt={run}", "+eval.foo=1"], "unknown key eval.foo; valid keys of eval"),
    (["ckpt={run}", "+eval.judge.stepz=1"], "unknown key eval.judge.stepz"),
    (["ckpt={run}", "eval.judge.lr=abc"], "eval.judge.lr='abc' is not a valid value"),
    (["ckpt={run}", "eval.batch_size=abc"], "eval.batch_size='abc' is not a valid value"),
    (["ckpt={run}", "+foo=1"], "unknown key foo; valid top-level keys"),
    (["ckpt={tmp}/nope"], "does not exist"),
    *[([f"ckpt={{bad_{n}}}"], m) for n, m in BAD_CKPT.items()],
]

CASES = [
    *typo_cases(),
    *[("train", args, message) for args, message in TRAIN_CASES],
    *[("synthesize", args, message) for args, message in SYNTH_CASES],
    *[("evaluate", args, message) for args, message in EVAL_CASES],
]


def test_the_table_holds_at_least_99_cases() -> None:
    assert len(CASES) >= 99


@pytest.mark.parametrize(
    ("command", "args", "expected"),
    CASES,
    ids=[f"{c}:{' '.join(a)}" for c, a, _ in CASES],
)
def test_bad_input_gives_one_clear_line(
    capsys, monkeypatch, tmp_path: Path, places: dict[str, str], command, args, expected
) -> None:
    argv = [arg.format(**places) for arg in args]
    if command == "train":
        argv = [*SMOKE, f"run_dir={tmp_path / 'run'}", *argv]
    elif command == "synthesize":
        argv = [*argv, f"output={tmp_path / 'out'}"]
    code, output = run_cli(capsys, monkeypatch, tmp_path, command, *argv)
    assert code == 2, output[-2000:]
    assert "Traceback" not in output
    [line] = error_lines(output)
    assert line.startswith(f"spadelab {command}: error: "), line
    assert expected in line, line
    assert "weights_only=False" not in line  # never advise running a checkpoint's code

"""``spadelab.checkpoints``: one lookup for every ``ckpt=`` / ``ckpt_path=``, safe loading, and
the "same network?" check, on small hand-made checkpoint files."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

from spadelab import builders
from spadelab.checkpoints import (
    ARCHITECTURE_KEYS,
    architecture_differences,
    check_checkpoint_matches,
    find_checkpoint,
    load_checkpoint,
    output_paths,
    resume_checkpoint,
    run_dir_of,
)
from spadelab.config import same_section, upgrade_saved_config
from spadelab.runtime import ConfigError
from spadelab.tables.rundirs import IDENTITY_KEYS, run_state


@pytest.fixture(scope="module")
def train_cfg(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from spadelab.config import compose_config

    run_dir = tmp_path_factory.mktemp("cfg")
    cfg = compose_config("train", [f"run_dir={run_dir}", "scale=smoke"])
    plain = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(plain, dict)
    return plain


def save_checkpoint(path: Path, cfg: dict[str, Any] | None, weight: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint: dict[str, Any] = {"state_dict": {"w": torch.full((2,), weight)}}
    if cfg is not None:
        checkpoint["hyper_parameters"] = {"cfg": cfg}
    torch.save(checkpoint, path)
    return path


def test_lookup_of_a_run_dir_a_flat_dir_and_a_file(tmp_path: Path) -> None:
    run = tmp_path / "run"
    last = save_checkpoint(run / "checkpoints" / "last.ckpt", None)
    epoch = save_checkpoint(run / "checkpoints" / "epoch0000.ckpt", None)
    assert find_checkpoint(run) == last
    assert find_checkpoint(str(run)) == last
    assert find_checkpoint(epoch) == epoch  # an explicit file wins over last.ckpt
    flat = save_checkpoint(tmp_path / "flat" / "last.ckpt", None)  # e.g. a copied checkpoint
    assert find_checkpoint(tmp_path / "flat") == flat
    assert run_dir_of(last) == run
    assert run_dir_of(flat) == tmp_path / "flat"


@pytest.mark.parametrize("setting", ["ckpt", "ckpt_path"])
def test_lookup_errors_name_the_setting(tmp_path: Path, setting: str) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError) as error:
        find_checkpoint(tmp_path / "empty", setting)
    message = str(error.value)
    assert message.startswith(f"{setting}={tmp_path / 'empty'} is a directory without ")
    assert "checkpoints/last.ckpt" in message and "\n" not in message
    with pytest.raises(FileNotFoundError) as error:
        find_checkpoint(tmp_path / "missing.ckpt", setting)
    message = str(error.value)
    assert message.startswith(f"{setting}={tmp_path / 'missing.ckpt'} does not exist; pass ")
    assert "\n" not in message


def test_resume_checkpoint_settings(tmp_path: Path) -> None:
    fresh, run = tmp_path / "fresh", tmp_path / "run"
    last = save_checkpoint(run / "checkpoints" / "last.ckpt", None)
    epoch = save_checkpoint(run / "checkpoints" / "epoch0000.ckpt", None)
    for empty in (None, "", "null"):
        assert resume_checkpoint(empty, run) is None
    assert resume_checkpoint("auto", fresh) is None  # a fresh run dir starts fresh
    assert resume_checkpoint("auto", run) == last
    assert resume_checkpoint("last", run) == last
    assert resume_checkpoint(str(run), fresh) == last
    assert resume_checkpoint(str(epoch), fresh) == epoch
    with pytest.raises(FileNotFoundError, match=r"^ckpt_path=last: .*fresh has no checkpoints"):
        resume_checkpoint("last", fresh)
    with pytest.raises(FileNotFoundError, match=r"^ckpt_path=.*nothing\.ckpt does not exist"):
        resume_checkpoint(str(tmp_path / "nothing.ckpt"), fresh)


def test_output_paths_is_what_lookup_finds(tmp_path: Path) -> None:
    ckpt, run_dir = output_paths(tmp_path / "imported")
    assert (ckpt, run_dir) == (
        tmp_path / "imported" / "checkpoints" / "last.ckpt",
        tmp_path / "imported",
    )
    save_checkpoint(ckpt, None)
    assert find_checkpoint(run_dir) == ckpt and run_dir_of(ckpt) == run_dir
    assert output_paths(tmp_path / "x.ckpt") == (tmp_path / "x.ckpt", tmp_path)


def test_load_refuses_unreadable_foreign_and_diverged_files(tmp_path: Path) -> None:
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"^ckpt=.*text\.ckpt is not a readable checkpoint"):
        load_checkpoint(tmp_path / "text.ckpt")
    (tmp_path / "zero.ckpt").write_bytes(b"")
    with pytest.raises(ValueError, match=r"zero\.ckpt is empty \(0 bytes\)"):
        load_checkpoint(tmp_path / "zero.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.ckpt")
    with pytest.raises(ValueError, match="not a spadelab checkpoint"):
        load_checkpoint(tmp_path / "foreign.ckpt")
    save_checkpoint(tmp_path / "nan.ckpt", {"loss": {}}, weight=float("nan"))
    with pytest.raises(ValueError, match=r"^ckpt=.*nan\.ckpt holds non-finite weights"):
        load_checkpoint(tmp_path / "nan.ckpt")


def test_any_random_bytes_give_the_one_unreadable_line(tmp_path: Path) -> None:
    """Random bytes fail inside torch/pickle in many ways (UnicodeDecodeError is a ValueError,
    UnpicklingError, EOFError...); CI once drew one that escaped as a bare codec message."""
    import random

    rng = random.Random(0)
    for i in range(200):
        path = tmp_path / f"random{i}.ckpt"
        path.write_bytes(rng.randbytes(rng.choice([1, 7, 64, 4096])))
        with pytest.raises(ValueError) as error:
            load_checkpoint(path)
        assert str(error.value).startswith(f"ckpt={path} is not a readable checkpoint"), i
    (tmp_path / "utf8.ckpt").write_bytes(b"\x80\x02X\x02\x00\x00\x00\x98\x98.")
    with pytest.raises(ValueError, match=r"utf8\.ckpt is not a readable checkpoint"):
        load_checkpoint(tmp_path / "utf8.ckpt")


def test_identity_keys_extend_the_architecture_keys() -> None:
    # A sweep's "same run?" is "same network" plus what changes the numbers of that network.
    assert IDENTITY_KEYS[: len(ARCHITECTURE_KEYS)] == ARCHITECTURE_KEYS
    assert set(IDENTITY_KEYS) - set(ARCHITECTURE_KEYS) == {"loss", "seed"}


def test_same_architecture_resumes(train_cfg: dict[str, Any], tmp_path: Path) -> None:
    ckpt = save_checkpoint(tmp_path / "last.ckpt", train_cfg)
    check_checkpoint_matches(ckpt, train_cfg)
    other_loss = copy.deepcopy(train_cfg)
    other_loss["loss"]["lambda_feat"] = 0.0  # same network, other objective: may resume
    other_loss["seed"] = 7
    check_checkpoint_matches(ckpt, other_loss)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: c["norm"].update(eps=0.5), "norm"),
        (lambda c: c["model"]["generator"].update(ngf=8), "model"),
        (lambda c: c.update(modulation={"_target_": "other"}), "modulation"),
        (lambda c: c.update(encoder={"_target_": "vae"}), "encoder"),
        (lambda c: c["data"].update(label_nc=12), "data.label_nc"),
        (lambda c: c["data"].update(crop_size=64), "data.crop_size"),
        (lambda c: c["data"].update(use_instance=False), "data.use_instance"),
    ],
)
def test_other_architecture_is_refused_naming_the_settings(
    train_cfg: dict[str, Any], tmp_path: Path, change: Any, expected: str
) -> None:
    ckpt = save_checkpoint(tmp_path / "last.ckpt", train_cfg)
    cfg = copy.deepcopy(train_cfg)
    change(cfg)
    assert architecture_differences(train_cfg, cfg) == [expected]
    with pytest.raises(ConfigError) as error:
        check_checkpoint_matches(ckpt, cfg)
    assert str(error.value) == (
        f"checkpoint {ckpt} was trained with a different {expected}; use the same config "
        "overrides as that run, or start without ckpt_path"
    )


def test_several_differences_are_listed_together(train_cfg: dict[str, Any]) -> None:
    cfg = copy.deepcopy(train_cfg)
    cfg["norm"]["eps"] = 0.5
    cfg["data"]["label_nc"] = 12
    assert architecture_differences(train_cfg, cfg) == ["norm", "data.label_nc"]


def test_resume_refuses_a_foreign_checkpoint(train_cfg: dict[str, Any], tmp_path: Path) -> None:
    ckpt = save_checkpoint(tmp_path / "foreign.ckpt", None)
    with pytest.raises(
        ValueError, match=r"^ckpt_path=.*foreign\.ckpt is not a spadelab checkpoint"
    ):
        check_checkpoint_matches(ckpt, train_cfg)


# ---- configs saved by an older spadelab: groups without names, model.generator.input ----------


def _old_format(cfg: dict) -> dict:
    """``cfg`` as an older spadelab saved it: groups without ``name`` (model, data and scale
    always had one) and the generator's ``input`` key."""
    old = {
        key: (
            {k: v for k, v in value.items() if k != "name"}
            if isinstance(value, dict) and key not in ("model", "data", "scale")
            else value
        )
        for key, value in cfg.items()
    }
    generator = old["model"]["generator"]
    old["model"] = {
        **old["model"],
        "generator": {("input" if k == "input_kind" else k): v for k, v in generator.items()},
    }
    return old


def test_an_old_config_is_upgraded(compose_train) -> None:
    cfg = OmegaConf.to_container(compose_train("scale=smoke", "encoder=vae"), resolve=True)
    old = _old_format(cfg)
    assert old["model"]["generator"]["input"] == "noise" and "name" not in old["norm"]
    upgraded = upgrade_saved_config(old)
    generator = upgraded["model"]["generator"]
    assert generator["input_kind"] == "noise" and "input" not in generator
    assert list(generator) == list(cfg["model"]["generator"])  # in the same place
    assert "input" in old["model"]["generator"]  # the saved config itself is left alone
    assert (
        upgrade_saved_config(upgraded) == upgraded == upgrade_saved_config(OmegaConf.create(old))
    )
    assert upgrade_saved_config(cfg) == cfg  # today's configs pass unchanged
    # Names it lacks are left out of comparisons; every section then equals today's.
    assert all(same_section(upgraded.get(key), value) for key, value in cfg.items())
    assert not same_section(upgraded["norm"], {**cfg["norm"], "eps": 0.5})
    assert not same_section(cfg["norm"], {**cfg["norm"], "name": "other"})  # both named
    # The upgraded config builds the same generator (the noise input: a linear first layer).
    assert isinstance(builders.build_generator(upgraded).fc, torch.nn.Linear)
    # Generators without the key (pix2pixHD) are left as they are.
    pix2pixhd = OmegaConf.to_container(compose_train("model=pix2pixhd"), resolve=True)
    assert upgrade_saved_config(_old_format(pix2pixhd))["model"] == pix2pixhd["model"]


def test_a_checkpoint_saved_before_the_rename_loads_and_resumes(tmp_path: Path) -> None:
    from spadelab.config import compose_config
    from spadelab.module import SemanticSynthesis

    overrides = ["scale=smoke", "model.generator.input_kind=noise", "norm=instance"]
    cfg = OmegaConf.to_container(compose_config("train", ["run_dir=.", *overrides]), resolve=True)
    module = SemanticSynthesis(cfg)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    old = {"state_dict": module.state_dict(), "hyper_parameters": {"cfg": _old_format(cfg)}}
    torch.save({**old, "epoch": 3, "global_step": 8}, ckpt)
    # evaluate / synthesize / studio: rebuilt from its own (upgraded) config, weights loaded.
    loaded = load_checkpoint(tmp_path / "run")
    assert loaded.generator.input_kind.value == "noise"  # not the segmap default
    assert loaded.cfg["model"]["generator"]["input_kind"] == "noise"
    for key, value in module.generator.state_dict().items():
        torch.testing.assert_close(loaded.generator.state_dict()[key], value)
    # train ckpt_path=...: today's config (names, input_kind) is the same network.
    check_checkpoint_matches(ckpt, cfg)
    other = copy.deepcopy(cfg)
    other["model"]["generator"]["input_kind"] = "segmap"
    with pytest.raises(ConfigError, match="different model; use the same config"):
        check_checkpoint_matches(ckpt, other)


def test_an_old_run_dir_stays_complete(train_cfg: dict[str, Any], tmp_path: Path) -> None:
    run_dir = tmp_path / "row-seed0"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(_old_format(train_cfg)))
    (run_dir / "metrics.json").write_text(json.dumps({"generator": {"miou": 0.5}}))
    assert "input:" in (run_dir / "config.yaml").read_text()
    assert run_state(run_dir, train_cfg) == ("complete", "")
    changed = copy.deepcopy(train_cfg)
    changed["loss"]["lambda_feat"] = 0.0
    state, message = run_state(run_dir, changed)
    assert state == "stale" and "with a different loss (the experiment file" in message


@pytest.mark.slow
def test_a_run_saved_before_the_rename_resumes_training(tmp_path: Path) -> None:
    from spadelab.commands.train import train
    from spadelab.config import compose_config

    run_dir = tmp_path / "run"
    overrides = [
        f"run_dir={run_dir}",
        "scale=smoke",
        "encoder=vae",  # model.generator.input_kind=noise, an encoder: both renamed/named
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "callbacks.progress=null",
        "callbacks.samples=null",
        "data.max_train_samples=4",
        "data.num_workers=0",
        "ckpt_path=auto",
    ]
    train(compose_config("train", [*overrides, "trainer.max_epochs=1"]))
    # The run as an older spadelab left it: its checkpoint's config and config.yaml.
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    old_cfg = _old_format(checkpoint["hyper_parameters"]["cfg"])
    checkpoint["hyper_parameters"]["cfg"] = old_cfg
    torch.save(checkpoint, ckpt)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(old_cfg))
    summary = train(compose_config("train", [*overrides, "trainer.max_epochs=2"]))
    assert summary["iterations"] == 4  # 2 iterations per epoch: the first epoch was kept
    resumed = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert resumed["epoch"] == 1
    assert resumed["hyper_parameters"]["cfg"]["model"]["generator"]["input_kind"] == "noise"

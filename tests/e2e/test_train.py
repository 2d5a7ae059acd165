"""``train(cfg)`` end to end at smoke scale: every table row, exact resume, LR schedule, VGG, wandb."""

from __future__ import annotations

import csv
import json
import math
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import DictConfig, OmegaConf

import smoke
from smoke import QUIET
from spadelab.builders import image_size
from spadelab.checkpoints import check_checkpoint_matches, load_checkpoint
from spadelab.commands.train import train
from spadelab.config import compose_config
from spadelab.module import SemanticSynthesis, lr_factor
from spadelab.runtime import ConfigError, run_command

# smoke.TINY with sample grids of 2 validation images.
TINY = [*smoke.TINY, "callbacks.samples.num_samples=2"]
LOSS_COLUMNS = ["loss/g_gan", "loss/g_total", "loss/d_real", "loss/d_fake", "loss/d_total"]


def compose(run_dir: Path, *overrides: str) -> DictConfig:
    return compose_config("train", [f"run_dir={run_dir}", *QUIET, *overrides])


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "logs" / "metrics.csv").open(newline="") as file:
        return list(csv.DictReader(file))


def column(rows: list[dict[str, str]], key: str) -> list[float]:
    return [float(row[key]) for row in rows if row.get(key) not in (None, "")]


def load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


# ---- every generator row of the tables -----------------------------------------------------

ROWS = {
    "spade_decoder": ["model=spade_decoder"],
    "spade_decoder-concat": ["modulation=concat"],
    "spade_decoder-noise_input": ["model.generator.input_kind=noise"],
    "spade_decoder-compact": ["model.generator.width_multiplier=0.75"],
    "pix2pixhd": ["model=pix2pixhd"],
    "pix2pixhd_pp": ["model=pix2pixhd_pp"],
    "pix2pixhd_pp-spade": ["model=pix2pixhd_pp", "modulation=spade"],
    "pix2pixhd_pp-concat": ["model=pix2pixhd_pp", "modulation=concat"],
    "pix2pixhd_pp-batch": ["model=pix2pixhd_pp", "norm=batch"],
    "unpool_vaegan": ["model=unpool_vaegan"],
    # 128x96: one iteration of batch 2 is enough.
    "reduced_gaugan": ["model=reduced_gaugan", "data.max_train_samples=2"],
    "switchable": ["norm=switchable"],
    "switchable_inln": ["norm=switchable_inln"],
    "vae": ["encoder=vae"],
    "deeper_discriminator": ["model.discriminator.n_layers=5"],
    "no_feature_matching": ["loss.lambda_feat=0"],
    "ls_gan": ["loss.gan_mode=ls"],
    "original_gan": ["loss.gan_mode=original"],
    # Instance norm has no running statistics: EMA recalibration must skip it.
    "pix2pixhd-ema": ["model=pix2pixhd", "ema.enabled=true"],
}


@pytest.mark.parametrize("overrides", list(ROWS.values()), ids=list(ROWS))
def test_training_row_writes_checkpoint_config_and_finite_losses(
    tmp_path: Path, overrides: list[str]
) -> None:
    run_dir = tmp_path / "run"
    cfg = compose(run_dir, *TINY, *overrides)
    plain = OmegaConf.to_container(cfg, resolve=True)
    summary = train(cfg)

    batches = min(4, int(cfg.data.max_train_samples)) // int(cfg.data.batch_size)
    assert summary["iterations"] == batches and summary["epochs"] == 1
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "samples" / "final.png").is_file()
    assert OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml")) == plain
    assert json.loads((run_dir / "train_summary.json").read_text())["iterations"] == batches

    rows = read_metrics(run_dir)
    assert [int(row["step"]) for row in rows] == list(range(batches))
    expected = list(LOSS_COLUMNS)
    if plain["loss"]["lambda_feat"] > 0:
        expected.append("loss/g_feat")
    else:
        assert "loss/g_feat" not in rows[0]
    if plain["encoder"] is not None:
        expected.append("loss/g_kld")
    else:
        assert "loss/g_kld" not in rows[0]
    for key in expected:
        values = column(rows, key)
        assert len(values) == batches, key
        assert all(math.isfinite(v) for v in values), (key, values)
    total = column(rows, "loss/g_total")[0]
    parts = [
        column(rows, k)[0] for k in expected if k.startswith("loss/g_") and k != "loss/g_total"
    ]
    assert total == pytest.approx(sum(parts), rel=1e-5, abs=1e-6)

    # The checkpoint rebuilds from its own config and generates images of the data geometry.
    module = load_checkpoint(run_dir)
    assert module.cfg["model"] == plain["model"]
    assert (module.generator_ema is not None) == plain["ema"]["enabled"]
    label = torch.zeros(2, 1, *image_size(plain["data"]), dtype=torch.long)
    fake = module.synthesize({"label": label, "instance": torch.zeros_like(label)})
    assert fake.shape == (2, 3, *image_size(plain["data"]))
    assert torch.isfinite(fake).all() and fake.abs().max() <= 1


def test_reduced_gaugan_row_is_128x96(tmp_path: Path) -> None:
    cfg = compose(tmp_path / "run", "model=reduced_gaugan")
    assert image_size(OmegaConf.to_container(cfg.data, resolve=True)) == (96, 128)


# ---- learning-rate schedule --------------------------------------------------------------


def test_logged_learning_rate_is_flat_then_decays_linearly(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cfg = compose(
        run_dir,
        "trainer.max_epochs=4",
        "optim.decay_start_epoch=2",
        "data.max_train_samples=4",
        "callbacks.samples=null",
    )
    train(cfg)
    rows = read_metrics(run_dir)
    lr_g, lr_d = column(rows, "lr/g"), column(rows, "lr/d")
    steps_per_epoch = 2
    assert len(lr_g) == 4 * steps_per_epoch
    # The rate each iteration used: 1e-4 for epochs 0-1, then 1, 0.75, 0.5, 0.25 of it.
    expected = [lr_factor(i / steps_per_epoch, 2, 4) for i in range(len(lr_g))]
    assert expected == [1, 1, 1, 1, 1, 0.75, 0.5, 0.25]
    assert lr_g == pytest.approx([1e-4 * f for f in expected], rel=1e-6)
    assert lr_d == pytest.approx([4e-4 * f for f in expected], rel=1e-6)
    schedulers = load(run_dir / "checkpoints" / "last.ckpt")["lr_schedulers"]
    assert [s["last_epoch"] for s in schedulers] == [8, 8]


# ---- exact resume ------------------------------------------------------------------------


@pytest.mark.slow
def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path: Path) -> None:
    # VAE (random z every step), EMA, BatchNorm statistics, flips and shuffling all consume
    # RNG state; sample grids every iteration run the EMA recalibration mid-training.
    common = [
        "trainer.max_epochs=2",
        "data.max_train_samples=4",
        "data.max_val_samples=2",
        "callbacks.samples.num_samples=2",
        "callbacks.samples.every_n_steps=1",
        "encoder=vae",
        "ema.enabled=true",
        "ema.decay=0.5",
    ]
    run_a, run_b = tmp_path / "a", tmp_path / "b"
    train(compose(run_a, *common))
    train(compose(run_b, *common, "trainer.max_epochs=1"))
    assert load(run_b / "checkpoints" / "last.ckpt")["epoch"] == 0
    summary = train(compose(run_b, *common, f"ckpt_path={run_b}"))
    assert summary["iterations"] == 4

    a, b = load(run_a / "checkpoints" / "last.ckpt"), load(run_b / "checkpoints" / "last.ckpt")
    assert (a["epoch"], a["global_step"]) == (b["epoch"], b["global_step"]) == (1, 8)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    prefixes = {key.split(".")[0] for key in a["state_dict"]}
    assert {"generator", "discriminator", "encoder", "generator_ema", "encoder_ema"} <= prefixes
    different = [k for k, v in a["state_dict"].items() if not torch.equal(v, b["state_dict"][k])]
    assert not different
    for opt_a, opt_b in zip(a["optimizer_states"], b["optimizer_states"], strict=True):
        assert opt_a["state"].keys() == opt_b["state"].keys()
        for index, state in opt_a["state"].items():
            for name, value in state.items():
                assert torch.equal(value, opt_b["state"][index][name]), (index, name)
    assert a["lr_schedulers"] == b["lr_schedulers"]

    # The resumed run's log keeps the first epoch's rows, and they are the same numbers.
    rows_a, rows_b = read_metrics(run_a), read_metrics(run_b)
    assert [r["step"] for r in rows_b] == [str(i) for i in range(4)]
    assert rows_a == rows_b


def test_crashed_run_resumes_with_ckpt_path_auto(tmp_path: Path, monkeypatch) -> None:
    """last.ckpt is written after every epoch, not only when training ends."""
    run_dir = tmp_path / "run"
    common = [
        "trainer.max_epochs=3",
        "data.max_train_samples=4",
        "callbacks.samples=null",
        "scale.checkpoint_every_n_epochs=5",  # no numbered copies: last.ckpt alone
        "ckpt_path=auto",
    ]
    original = SemanticSynthesis.training_step
    calls = []

    def preempted(self: SemanticSynthesis, batch: Any, batch_idx: int) -> None:
        calls.append(batch_idx)
        if len(calls) == 4:  # the second iteration of epoch 1
            raise RuntimeError("preempted")
        original(self, batch, batch_idx)

    with monkeypatch.context() as patch:
        patch.setattr(SemanticSynthesis, "training_step", preempted)
        with pytest.raises(RuntimeError, match="preempted"):
            train(compose(run_dir, *common))
    checkpoint = load(run_dir / "checkpoints" / "last.ckpt")
    assert (checkpoint["epoch"], checkpoint["global_step"]) == (0, 4)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["last.ckpt"]

    summary = train(compose(run_dir, *common))
    assert (summary["epochs"], summary["iterations"]) == (3, 6)
    assert [int(row["step"]) for row in read_metrics(run_dir)] == list(range(6))


# ---- checkpoints: which one, and does it fit ---------------------------------------------


@pytest.fixture(scope="module")
def spade_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("spade") / "run"
    train(compose(run_dir, *TINY, "callbacks.samples=null"))
    return run_dir


def test_checkpoint_from_another_architecture_is_refused(spade_run: Path, tmp_path: Path) -> None:
    # Each difference's message: tests/test_checkpoints.py; here the real run and train().
    last = spade_run / "checkpoints" / "last.ckpt"
    same = OmegaConf.to_container(compose(tmp_path / "run", *TINY), resolve=True)
    check_checkpoint_matches(last, same)  # the run's own config: fine
    other = OmegaConf.to_container(compose(tmp_path / "run", "model=pix2pixhd"), resolve=True)
    with pytest.raises(ConfigError, match="different model, norm, modulation"):
        check_checkpoint_matches(last, other)
    cfg = compose(tmp_path / "run", *TINY, f"ckpt_path={spade_run}", "norm=instance")
    with pytest.raises(ConfigError, match="norm"):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


# ---- VGG perceptual loss -----------------------------------------------------------------


@pytest.fixture(scope="module")
def vgg_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random torchvision vgg19 state dict (80 MB).

    The classifier (470 MB) is never used: its tensors are stride-0 views of one element,
    which torch.save stores as that element.
    """
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    features = torchvision.models.vgg19(weights=None).state_dict()
    state = {
        key: value if key.startswith("features.") else torch.zeros(1).expand(value.shape)
        for key, value in features.items()
    }
    path = tmp_path_factory.mktemp("vgg") / "vgg19-random.pth"
    torch.save(state, path)
    return path


@pytest.mark.slow
def test_vgg_loss_trains_and_stays_out_of_the_checkpoint(tmp_path: Path, vgg_weights: Path):
    run_dir = tmp_path / "run"
    cfg = compose(run_dir, *TINY, "loss.lambda_vgg=10", f"loss.vgg_weights={vgg_weights}")
    train(cfg)
    values = column(read_metrics(run_dir), "loss/g_vgg")
    assert len(values) == 2 and all(math.isfinite(v) and v > 0 for v in values)
    checkpoint = load(run_dir / "checkpoints" / "last.ckpt")
    assert not [k for k in checkpoint["state_dict"] if "vgg" in k.lower() or "slices" in k]
    assert checkpoint["hyper_parameters"]["cfg"]["loss"]["vgg_weights"] == str(vgg_weights)
    module = load_checkpoint(run_dir)  # inference does not need the VGG weights
    assert module.vgg is None


def test_vgg_loss_without_weights_fails_at_start(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("SPADELAB_VGG19_WEIGHTS", raising=False)
    run_dir = tmp_path / "run"
    with pytest.raises(ValueError, match=r"loss\.vgg_weights is not set"):
        train(compose(run_dir, *TINY, "loss.lambda_vgg=10"))
    assert not (run_dir / "checkpoints").exists()
    with pytest.raises(FileNotFoundError, match=r"loss\.vgg_weights=.*missing\.pth"):
        SemanticSynthesis(
            OmegaConf.to_container(
                compose(
                    run_dir, "loss.lambda_vgg=10", f"loss.vgg_weights={tmp_path / 'missing.pth'}"
                ),
                resolve=True,
            )
        )


# ---- Weights & Biases, offline -----------------------------------------------------------


def wandb_records(run_dir: Path) -> Iterator[Any]:
    """The records of the offline run's ``.wandb`` file (a LevelDB-style log of protobufs)."""
    from wandb.proto import wandb_internal_pb2

    files = sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1, files
    data = files[0].read_bytes()
    assert data[:4] == b":W&B"
    block, position, pending = 32768, 7, b""
    while position + 7 <= len(data):
        left = block - position % block
        if left < 7:  # block trailer
            position += left
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if length == 0 and kind == 0:  # zero padding up to the block's end
            position += left
            continue
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a full record, or the last fragment of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def wandb_summary(run_dir: Path) -> tuple[list[dict[str, str]], int | None]:
    history, exit_code = [], None
    for record in wandb_records(run_dir):
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.append(
                {
                    item.key or "/".join(item.nested_key): item.value_json
                    for item in record.history.item
                }
            )
        elif kind == "exit":
            exit_code = record.exit.exit_code
    return history, exit_code


@pytest.fixture
def wandb_offline(tmp_path: Path, monkeypatch) -> Any:
    wandb = pytest.importorskip("wandb")
    home = tmp_path / "wandb_home"
    home.mkdir()
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    for name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(home))
    yield wandb
    if wandb.run is not None:  # never leak a run into the next test
        wandb.finish()


@pytest.mark.slow
def test_wandb_offline_run_is_written_and_finished(tmp_path: Path, wandb_offline: Any) -> None:
    run_dir = tmp_path / "run"
    train(compose(run_dir, *TINY, "logger=wandb", "callbacks.samples=null"))
    assert wandb_offline.run is None
    history, exit_code = wandb_summary(run_dir)
    assert exit_code == 0
    steps = [row for row in history if "loss/g_gan" in row]
    assert len(steps) == 2
    assert all(math.isfinite(float(row["loss/d_total"])) for row in steps)
    assert len(read_metrics(run_dir)) == 2  # the CSV logger runs next to it


@pytest.mark.slow
def test_failed_run_still_finishes_wandb(tmp_path: Path, wandb_offline: Any, monkeypatch):
    original = SemanticSynthesis.training_step
    calls = []

    def failing_step(self: SemanticSynthesis, batch: Any, batch_idx: int) -> None:
        calls.append(batch_idx)
        if len(calls) > 1:
            raise RuntimeError("boom in step 2")
        original(self, batch, batch_idx)

    monkeypatch.setattr(SemanticSynthesis, "training_step", failing_step)
    run_dir = tmp_path / "run"
    cfg = compose(run_dir, *TINY, "logger=wandb", "callbacks.samples=null")
    with pytest.raises(RuntimeError, match="boom in step 2"):
        run_command("train", train, cfg)
    assert wandb_offline.run is None
    history, exit_code = wandb_summary(run_dir)
    assert exit_code == 1
    assert len([row for row in history if "loss/g_gan" in row]) == 1
    failed = json.loads((run_dir / "FAILED.json").read_text())
    assert "boom in step 2" in failed["error"] and "Traceback" in failed["traceback"]

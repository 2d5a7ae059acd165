"""SemanticSynthesis: schedule, EMA, the one-forward GAN step, overfitting, checkpoints."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

import spadelab.commands.train as train_module
from smoke import QUIET
from spadelab.commands.train import train
from spadelab.config import compose_config
from spadelab.module import SemanticSynthesis, lr_factor


def compose(tmp_path: Path, *overrides: str) -> DictConfig:
    return compose_config("train", [f"run_dir={tmp_path / 'run'}", *QUIET, *overrides])


def build(tmp_path: Path, *overrides: str) -> tuple[SemanticSynthesis, Any]:
    """A module and its (set-up) datamodule, outside any Trainer."""
    cfg = compose(tmp_path, *overrides)
    torch.manual_seed(0)
    module = SemanticSynthesis(OmegaConf.to_container(cfg, resolve=True))
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    return module, datamodule


def norm_layers(network: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in network.modules() if getattr(m, "running_mean", None) is not None]


# ---- learning-rate schedule ---------------------------------------------------------------


def test_lr_factor_is_flat_then_linear_to_zero() -> None:
    assert lr_factor(0, 100, 200) == 1.0
    assert lr_factor(99.9, 100, 200) == 1.0
    assert lr_factor(100, 100, 200) == 1.0
    assert lr_factor(150, 100, 200) == pytest.approx(0.5)
    assert lr_factor(175, 100, 200) == pytest.approx(0.25)
    assert lr_factor(200, 100, 200) == 0.0
    assert lr_factor(250, 100, 200) == 0.0  # never negative
    # No room for a decay (decay starts at or after the end): constant.
    assert lr_factor(5, 10, 10) == 1.0
    assert lr_factor(5, 20, 10) == 1.0


def test_optimizers_follow_the_ttur_config(tmp_path: Path) -> None:
    module, _ = build(tmp_path, "encoder=vae")
    (opt_g, opt_d), schedulers = module.configure_optimizers()
    assert opt_g.param_groups[0]["lr"] == pytest.approx(1e-4)
    assert opt_d.param_groups[0]["lr"] == pytest.approx(4e-4)
    assert opt_g.param_groups[0]["betas"] == (0.0, 0.9)
    g_ids = {id(p) for group in opt_g.param_groups for p in group["params"]}
    d_ids = {id(p) for group in opt_d.param_groups for p in group["params"]}
    assert g_ids == {id(p) for p in [*module.generator.parameters(), *module.encoder.parameters()]}
    assert d_ids == {id(p) for p in module.discriminator.parameters()}
    assert [s["interval"] for s in schedulers] == ["step", "step"]


# ---- one generator forward per iteration -------------------------------------------------


def test_one_generator_forward_per_iteration_and_d_step_sees_that_fake(
    tmp_path: Path, monkeypatch
) -> None:
    seen: dict[str, Any] = {"calls": Counter(), "fakes": [], "d_images": []}

    class Recording(SemanticSynthesis):
        def __init__(self, cfg: Any) -> None:
            super().__init__(cfg)
            seen["module"] = self

            def on_generator(module, inputs, output) -> None:
                seen["calls"]["generator"] += 1
                seen["fakes"].append(output.detach().clone())

            def on_discriminator(module, inputs, output) -> None:
                seen["calls"]["discriminator"] += 1
                seen["d_images"].append(inputs[1].detach().clone())

            self.generator.register_forward_hook(on_generator)
            self.discriminator.register_forward_hook(on_discriminator)

    monkeypatch.setattr(train_module, "SemanticSynthesis", Recording)
    cfg = compose(
        tmp_path,
        "trainer.max_epochs=1",
        "data.max_train_samples=6",
        "callbacks.samples=null",
        "logger=none",
    )
    summary = train(cfg)
    iterations = 3
    assert summary["iterations"] == iterations
    assert summary["global_step"] == 2 * iterations  # two optimizer steps per iteration
    assert seen["calls"]["generator"] == iterations
    assert seen["calls"]["discriminator"] == 2 * iterations  # G step, then D step
    n = cfg.data.batch_size
    for k in range(iterations):
        fake = seen["fakes"][k]
        g_step_images, d_step_images = seen["d_images"][2 * k], seen["d_images"][2 * k + 1]
        # Both D forwards see [fake, real] with the fake of this iteration's only forward.
        assert torch.equal(g_step_images[:n], fake)
        assert torch.equal(d_step_images[:n], fake)
        assert torch.equal(g_step_images[n:], d_step_images[n:])


# ---- overfitting one batch ---------------------------------------------------------------


def test_generator_overfits_one_fixed_batch(tmp_path: Path) -> None:
    """Feature matching (weight 10) pulls the fakes of a fixed batch towards its real images.

    G's learning rate is D's (pix2pixHD's setting) so that 60 iterations are enough.
    """
    module, datamodule = build(tmp_path, "data.flip=false", "optim.lr_g=4e-4")
    batch = datamodule.fixed_batch(2)
    (opt_g, opt_d), _ = module.configure_optimizers()
    label_map, real = module.label_map(batch), batch["image"]
    errors = []
    for _ in range(60):
        g_terms, fake = module.generator_losses(label_map, real)
        opt_g.zero_grad(set_to_none=True)
        sum(g_terms.values()).backward()
        opt_g.step()
        d_terms = module.discriminator_losses(label_map, fake, real)
        opt_d.zero_grad(set_to_none=True)
        sum(d_terms.values()).backward()
        opt_d.step()
        errors.append((fake.detach() - real).abs().mean().item())
        assert all(torch.isfinite(v) for v in [*g_terms.values(), *d_terms.values()])
    early, late = np.mean(errors[:5]), np.mean(errors[-10:])
    assert late < 0.8 * early, (early, late, errors)


# ---- EMA ----------------------------------------------------------------------------------


def test_ema_is_on_by_default_with_the_warmup_rule(tmp_path: Path) -> None:
    from spadelab.module import EmaSchedule

    module, _ = build(tmp_path)
    assert module.generator_ema is not None
    assert module.ema == EmaSchedule(half_life_images=10_000, rampup=0.05, decay=None)


def test_ema_can_be_turned_off(tmp_path: Path) -> None:
    module, _ = build(tmp_path, "ema.enabled=false")
    assert module.generator_ema is None and module.ema is None
    assert module.sampling_generator() == (module.generator, None)
    assert not any(k.startswith("generator_ema.") for k in module.state_dict())


def test_update_ema_is_a_lerp_towards_the_live_weights(tmp_path: Path) -> None:
    module, _ = build(tmp_path, "ema.enabled=true", "ema.decay=0.5", "encoder=vae")
    assert module.ema.beta(4, 4) == 0.5
    with torch.no_grad():
        for p in [*module.generator.parameters(), *module.encoder.parameters()]:
            p.add_(torch.randn_like(p))
        for b in module.generator.buffers():
            if b.is_floating_point():
                b.add_(1.0)
    pairs = [(module.generator_ema, module.generator), (module.encoder_ema, module.encoder)]
    before = [[p.clone() for p in ema.parameters()] for ema, _ in pairs]
    module.update_ema(0.5)
    for (ema, live), old in zip(pairs, before):
        for p_ema, p_old, p in zip(ema.parameters(), old, live.parameters()):
            assert not torch.equal(p_ema, p)
            assert torch.equal(p_ema, torch.lerp(p_old, p, 0.5))
    # Buffers (running stats, spectral-norm vectors) are copied, not averaged.
    for b_ema, b in zip(module.generator_ema.buffers(), module.generator.buffers()):
        assert torch.equal(b_ema, b)
    assert norm_layers(module.generator_ema)  # the default syncbatch keeps running stats


def test_ema_warmup_is_stylegan2_ada_rule() -> None:
    from spadelab.module import EmaSchedule

    schedule = EmaSchedule(half_life_images=10_000, rampup=0.05)
    # Early: half-life = 5% of the images seen, so the first step keeps almost nothing of init.
    assert schedule.beta(4, 4) == pytest.approx(0.5 ** (4 / 0.2))
    assert schedule.beta(4, 4000) == pytest.approx(0.5 ** (4 / 200))
    # Late: capped at the half-life itself.
    assert schedule.beta(4, 10**6) == pytest.approx(0.5 ** (4 / 10_000))
    assert EmaSchedule(rampup=None).beta(4, 4) == pytest.approx(0.5 ** (4 / 10_000))
    assert EmaSchedule(decay=0.999).beta(4, 4) == 0.999
    with pytest.raises(ValueError, match="ema.decay"):
        EmaSchedule.from_config({"enabled": True, "decay": 1.5})
    with pytest.raises(ValueError, match="ema.half_lif"):
        EmaSchedule.from_config({"enabled": True, "half_lif": 3})


def test_ema_weights_after_k_steps_follow_the_warmup_formula(tmp_path: Path) -> None:
    """Three real training steps: the EMA weights equal the recursion with the rule's betas."""
    from spadelab.module import EmaSchedule

    cfg = compose(
        tmp_path,
        "ema.enabled=true",
        "ema.half_life_images=100",
        "ema.rampup=0.5",
        "trainer.max_epochs=1",
        "data.max_train_samples=6",
        "callbacks.samples.num_samples=2",
    )
    module = SemanticSynthesis(OmegaConf.to_container(cfg, resolve=True))
    snapshots = [[p.detach().clone() for p in module.generator.parameters()]]
    expected = [p.detach().clone() for p in module.generator_ema.parameters()]

    class Record(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            snapshots.append([p.detach().clone() for p in pl_module.generator.parameters()])

    datamodule = instantiate(cfg.data)
    trainer = pl.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Record()],
        limit_val_batches=0,
    )
    trainer.fit(module, datamodule=datamodule)
    schedule = EmaSchedule(half_life_images=100, rampup=0.5)
    batch = int(cfg.data.batch_size)
    for k, live in enumerate(snapshots[1:], start=1):
        beta = schedule.beta(batch, k * batch)
        expected = [torch.lerp(e, p, 1 - beta) for e, p in zip(expected, live)]
    assert len(snapshots) == 4
    for e, p in zip(expected, module.generator_ema.parameters()):
        torch.testing.assert_close(p, e, rtol=1e-6, atol=1e-7)


def test_training_with_ema_keeps_a_separate_average(tmp_path: Path) -> None:
    cfg = compose(
        tmp_path,
        "ema.enabled=true",
        "ema.decay=0.5",
        "trainer.max_epochs=1",
        "data.max_train_samples=4",
        "callbacks.samples.num_samples=2",
    )
    train(cfg)
    state = torch.load(
        Path(cfg.run_dir) / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True
    )["state_dict"]
    live = {k[len("generator.") :]: v for k, v in state.items() if k.startswith("generator.")}
    ema = {
        k[len("generator_ema.") :]: v for k, v in state.items() if k.startswith("generator_ema.")
    }
    assert live.keys() == ema.keys()
    weights = [k for k in live if k.endswith(("weight", "weight_orig", "bias"))]
    assert weights
    assert any(not torch.equal(live[k], ema[k]) for k in weights)
    assert all(torch.isfinite(ema[k]).all() for k in weights)


def test_recalibrate_ema_norms_averages_batch_statistics(tmp_path: Path) -> None:
    module, datamodule = build(tmp_path, "norm=batch", "ema.enabled=true", "data.flip=false")
    with torch.no_grad():  # EMA weights that differ from the live ones
        for p in module.generator_ema.parameters():
            p.mul_(1.5)
    norms = norm_layers(module.generator_ema)
    assert norms
    live_stats = [
        (m.running_mean.clone(), m.running_var.clone()) for m in norm_layers(module.generator)
    ]
    inputs: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(norms))}
    hooks = [
        m.register_forward_pre_hook(lambda _m, args, i=i: inputs[i].append(args[0].detach()))
        for i, m in enumerate(norms)
    ]
    samples = [datamodule.train_set[i] for i in range(4)]
    batches = [
        {k: torch.stack([s[k] for s in pair]) for k in ("label", "instance", "image")}
        for pair in (samples[:2], samples[2:])
    ]
    assert module.recalibrate_ema_norms(batches) == 2
    for hook in hooks:
        hook.remove()

    for i, m in enumerate(norms):
        assert len(inputs[i]) == 2
        means = torch.stack([x.mean(dim=(0, 2, 3)) for x in inputs[i]])
        variances = torch.stack([x.var(dim=(0, 2, 3), unbiased=True) for x in inputs[i]])
        torch.testing.assert_close(m.running_mean, means.mean(0), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(m.running_var, variances.mean(0), rtol=1e-4, atol=1e-5)
        assert m.momentum == 0.1  # restored
    assert not module.generator_ema.training
    for m, (mean, var) in zip(norm_layers(module.generator), live_stats):
        assert torch.equal(m.running_mean, mean) and torch.equal(m.running_var, var)


def test_recalibrate_skips_norms_without_running_statistics(tmp_path: Path) -> None:
    """InstanceNorm has ``running_mean = None``: nothing to recalibrate, and no crash."""
    module, datamodule = build(tmp_path, "model=pix2pixhd", "ema.enabled=true")
    assert any(isinstance(m, torch.nn.InstanceNorm2d) for m in module.generator_ema.modules())
    assert module.recalibrate_ema_norms([datamodule.fixed_batch(2)]) == 0
    assert build(tmp_path, "model=pix2pixhd")[0].recalibrate_ema_norms([]) == 0  # EMA off


def test_samples_come_from_the_ema_generator_when_it_is_on(tmp_path: Path) -> None:
    module, datamodule = build(tmp_path, "ema.enabled=true")
    batch = datamodule.fixed_batch(2)
    with torch.no_grad():
        for p in module.generator_ema.parameters():
            p.add_(0.1 * torch.randn_like(p))
    calls = Counter()
    module.generator.register_forward_hook(lambda *_: calls.update(["live"]))
    module.generator_ema.register_forward_hook(lambda *_: calls.update(["ema"]))
    from_ema = module.synthesize(batch)
    assert calls == Counter(ema=1)
    from_live = module.synthesize(batch, use_ema=False)
    assert calls == Counter(ema=1, live=1)
    assert not torch.allclose(from_ema, from_live)
    assert module.sampling_generator() == (module.generator_ema, None)
    assert module.generator.training  # synthesize restores the mode it found


# ---- construction errors and checkpoints -------------------------------------------------


def test_vae_encoder_needs_noise_input(tmp_path: Path) -> None:
    cfg = compose(tmp_path, "encoder=vae", "model.generator.input_kind=segmap")
    with pytest.raises(ValueError, match="model.generator.input_kind=noise"):
        SemanticSynthesis(OmegaConf.to_container(cfg, resolve=True))


def test_vgg_loss_without_weights_names_the_setting(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("SPADELAB_VGG19_WEIGHTS", raising=False)
    cfg = compose(tmp_path, "loss.lambda_vgg=10")
    with pytest.raises(ValueError, match="loss.vgg_weights"):
        SemanticSynthesis(OmegaConf.to_container(cfg, resolve=True))


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path: Path) -> None:
    module, _ = build(tmp_path)
    checkpoint: dict[str, Any] = {}
    module.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, tmp_path / "rng.ckpt")
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    np.random.randn()  # leaves a cached gaussian in numpy's state
    module.on_load_checkpoint(torch.load(tmp_path / "rng.ckpt", weights_only=True))
    again = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    assert torch.equal(expected[0], again[0])
    assert np.array_equal(expected[1], again[1])
    assert expected[2] == again[2]
    module.on_load_checkpoint({})  # old checkpoints without RNG states load too

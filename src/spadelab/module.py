"""The GAN training step: one LightningModule for every generator, norm and modulation.

Order of phases per iteration (one generator forward):
1. ``fake = G(label_map, z)``;
2. generator step: D sees ``[fake, real]`` in one forward, so feature matching compares fake
   and real features of the *same* discriminator, exactly as the official code's G step;
3. discriminator step on ``fake.detach()`` and the real image.
The G step is therefore identical to the official one; the D step sees the fake of the
pre-update generator (the official code runs G a second time to get the post-update fake).
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn as nn
from omegaconf import DictConfig, OmegaConf

from spadelab import losses
from spadelab.atomic import atomic_path
from spadelab.builders import build_discriminator, build_encoder, build_generator, label_spec
from spadelab.data.labels import semantic_input
from spadelab.losses import ClassBalance
from spadelab.nets.encoder import reparameterize
from spadelab.nets.generators import draws_noise
from spadelab.nets.oasis import OASISDiscriminator
from spadelab.nets.vgg import VGG19Features
from spadelab.norm.param_free import use_cpu_sync_batchnorm


def _plain(cfg: Mapping[str, Any] | DictConfig) -> dict[str, Any]:
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return copy.deepcopy(dict(cfg))


def lr_factor(epoch: float, decay_start_epoch: float, max_epochs: float) -> float:
    """1 until ``decay_start_epoch``, then linear to 0 at ``max_epochs`` (paper: 100 of 200)."""
    if epoch < decay_start_epoch or max_epochs <= decay_start_epoch:
        return 1.0
    return max(0.0, 1.0 - (epoch - decay_start_epoch) / (max_epochs - decay_start_epoch))


@dataclass(frozen=True)
class EmaSchedule:
    """The EMA generator's per-step decay, StyleGAN2-ADA's rule by default.

    The average has a half-life of ``half_life_images`` training images, capped at ``rampup``
    times the images seen so far, so early on it forgets the random initial weights within a
    few steps instead of carrying them for thousands (a fixed 0.999 still holds half of them
    after 693 steps). ``decay`` set gives a fixed per-step decay instead, the classic form.
    """

    half_life_images: float = 10_000.0
    rampup: float | None = 0.05
    decay: float | None = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> EmaSchedule:
        keys = {"enabled", "half_life_images", "rampup", "decay"}
        unknown = sorted(set(cfg) - keys)
        if unknown:
            raise ValueError(f"ema.{unknown[0]} is not a setting; valid: {sorted(keys)}")
        schedule = cls(
            half_life_images=float(cfg.get("half_life_images", cls.half_life_images)),
            rampup=None if cfg.get("rampup") is None else float(cfg["rampup"]),
            decay=None if cfg.get("decay") is None else float(cfg["decay"]),
        )
        if schedule.decay is not None and not 0.0 <= schedule.decay < 1.0:
            raise ValueError(f"ema.decay={schedule.decay} must be in [0, 1) (or null)")
        if schedule.half_life_images <= 0:
            raise ValueError(f"ema.half_life_images={schedule.half_life_images} must be > 0")
        if schedule.rampup is not None and schedule.rampup <= 0:
            raise ValueError(f"ema.rampup={schedule.rampup} must be > 0 (or null: no warm-up)")
        return schedule

    def beta(self, batch_images: int, images_seen: int) -> float:
        """Decay of the step that brings the count of images seen to ``images_seen``."""
        if self.decay is not None:
            return self.decay
        half_life = self.half_life_images
        if self.rampup is not None:
            half_life = min(half_life, images_seen * self.rampup)
        return 0.5 ** (batch_images / max(half_life, 1e-8))


class SemanticSynthesis(pl.LightningModule):
    def __init__(self, cfg: Mapping[str, Any] | DictConfig) -> None:
        super().__init__()
        cfg = _plain(cfg)
        self.save_hyperparameters({"cfg": cfg})
        self.cfg = cfg
        self.automatic_optimization = False
        self.spec = label_spec(cfg["data"])
        self.loss_cfg = cfg["loss"]
        self.optim_cfg = cfg["optim"]
        self.gan_d_loss, self.gan_g_loss = losses.GAN_LOSSES[
            losses.GanMode(self.loss_cfg["gan_mode"])
        ]
        self.generator = build_generator(cfg)
        self.discriminator = build_discriminator(cfg)
        self.oasis = OasisObjective.from_config(self.loss_cfg, self.discriminator, self.spec)
        self.encoder = build_encoder(cfg)
        if self.encoder is not None and not draws_noise(self.generator):
            raise ValueError(
                "encoder=vae needs model.generator.input_kind=noise (the encoder produces z)"
            )
        ema_cfg = cfg.get("ema") or {}
        self.ema = EmaSchedule.from_config(ema_cfg) if ema_cfg.get("enabled") else None
        self.generator_ema = None
        self.encoder_ema = None
        if self.ema is not None:
            self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False).eval()
            self.encoder_ema = (
                copy.deepcopy(self.encoder).requires_grad_(False).eval()
                if self.encoder is not None
                else None
            )
        # Frozen helper networks live outside the module tree: they never enter checkpoints.
        self._vgg: list[VGG19Features] = []
        if float(self.loss_cfg.get("lambda_vgg", 0)) > 0:
            self._vgg.append(
                VGG19Features(
                    self.loss_cfg.get("vgg_weights"),
                    bool(self.loss_cfg.get("vgg_normalize_input", False)),
                )
            )
        self.steps_per_epoch: int | None = None

    # ---- inputs ----------------------------------------------------------------------
    def label_map(self, batch: Mapping[str, Any]) -> torch.Tensor:
        instance = batch.get("instance") if self.spec.use_instance else None
        return semantic_input(batch["label"], self.spec, instance)

    @property
    def vgg(self) -> VGG19Features | None:
        if not self._vgg:
            return None
        if next(self._vgg[0].parameters()).device != self.device:
            self._vgg[0].to(self.device)
        return self._vgg[0]

    def encode(
        self, image: torch.Tensor, encoder: nn.Module | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = (encoder or self.encoder)(image)
        return reparameterize(mu, logvar), mu, logvar

    def sampling_generator(self) -> tuple[nn.Module, nn.Module | None]:
        """The networks used for samples and evaluation: EMA copies when EMA is on."""
        if self.generator_ema is not None:
            return self.generator_ema, self.encoder_ema
        return self.generator, self.encoder

    @torch.no_grad()
    def synthesize(
        self,
        batch: Mapping[str, Any],
        use_ema: bool = True,
        z: torch.Tensor | None = None,
        style_image: torch.Tensor | None = None,
    ) -> torch.Tensor:
        generator, encoder = (
            self.sampling_generator() if use_ema else (self.generator, self.encoder)
        )
        label_map = self.label_map(batch)
        if style_image is not None:
            if encoder is None:
                raise ValueError("style= needs a model trained with encoder=vae")
            mu, logvar = encoder(style_image)
            z = reparameterize(mu, logvar)
        was_training = generator.training
        generator.eval()
        try:
            return generator(label_map, z)
        finally:
            generator.train(was_training)

    # ---- the GAN step ------------------------------------------------------------------
    def discriminate(
        self, label_map: torch.Tensor, fake: torch.Tensor, real: torch.Tensor
    ) -> tuple[list[list[torch.Tensor]], list[list[torch.Tensor]]]:
        # One forward for fake and real: instance norm keeps them independent, and the
        # official code does the same.
        outputs = self.discriminator(torch.cat([label_map, label_map]), torch.cat([fake, real]))
        n = fake.shape[0]
        fake_out = [[f[:n] for f in scale] for scale in outputs]
        real_out = [[f[n:] for f in scale] for scale in outputs]
        return fake_out, real_out

    def generator_losses(
        self, label_map: torch.Tensor, real: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        terms: dict[str, torch.Tensor] = {}
        z = None
        if self.encoder is not None:
            z, mu, logvar = self.encode(real)
            if float(self.loss_cfg.get("lambda_kld", 0)) > 0:
                terms["kld"] = losses.kl_divergence(mu, logvar) * self.loss_cfg["lambda_kld"]
        fake = self.generator(label_map, z)
        if self.oasis is not None:
            # The segmentation D: its image must be segmented as the label map (no features).
            classes = label_map.argmax(dim=1)
            terms["gan"] = losses.oasis_g_loss(
                self.discriminator(fake), classes, self.oasis.weights(classes)
            )
        else:
            fake_out, real_out = self.discriminate(label_map, fake, real)
            terms["gan"] = self.gan_g_loss(fake_out)
        if self.oasis is None and float(self.loss_cfg.get("lambda_feat", 0)) > 0:
            terms["feat"] = (
                losses.feature_matching_loss(fake_out, real_out) * self.loss_cfg["lambda_feat"]
            )
        vgg = self.vgg
        if vgg is not None:
            terms["vgg"] = (
                losses.perceptual_loss(
                    vgg(fake), vgg(real), self.loss_cfg.get("vgg_layer_weights")
                )
                * self.loss_cfg["lambda_vgg"]
            )
        return terms, fake

    def discriminator_losses(
        self, label_map: torch.Tensor, fake: torch.Tensor, real: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        if self.oasis is not None:
            return self.oasis_discriminator_losses(label_map, fake.detach(), real)
        fake_out, real_out = self.discriminate(label_map, fake.detach(), real)
        real_term, fake_term = self.gan_d_loss(real_out, fake_out)
        return {"real": real_term, "fake": fake_term}

    def oasis_discriminator_losses(
        self, label_map: torch.Tensor, fake: torch.Tensor, real: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The (N+1)-class loss on fake and real (one D forward: D has no norm layers),
        then LabelMix on an image mixed class by class from both."""
        classes = label_map.argmax(dim=1)
        n = fake.shape[0]
        logits = self.discriminator(torch.cat([fake, real]))
        fake_logits, real_logits = logits[:n], logits[n:]
        real_term, fake_term = losses.oasis_d_loss(
            real_logits, fake_logits, classes, self.oasis.weights(classes)
        )
        terms = {"real": real_term, "fake": fake_term}
        if self.oasis.lambda_labelmix > 0:
            mixed, mask = losses.labelmix(classes, fake, real)
            terms["labelmix"] = self.oasis.lambda_labelmix * losses.labelmix_loss(
                mask, self.discriminator(mixed), fake_logits, real_logits
            )
        return terms

    def on_fit_start(self) -> None:
        if self.oasis is not None and self.oasis.class_balance is ClassBalance.dataset:
            datamodule = self.trainer.datamodule
            self.oasis.load_dataset_counts(
                self.cfg["data"], lambda: (b["label"] for b in datamodule.train_dataloader())
            )

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        # global_step counts optimizer steps, two per iteration (G and D).
        iteration = self.global_step // 2
        label_map = self.label_map(batch)
        real = batch["image"]

        self.toggle_optimizer(opt_g)
        g_terms, fake = self.generator_losses(label_map, real)
        g_total = sum(g_terms.values())
        from spadelab.runtime import check_finite_losses  # stop before NaN reaches the weights

        check_finite_losses(g_terms, "loss/g_", iteration)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_total)
        opt_g.step()
        self.untoggle_optimizer(opt_g)

        self.toggle_optimizer(opt_d)
        d_terms = self.discriminator_losses(label_map, fake, real)
        d_total = sum(d_terms.values())
        check_finite_losses(d_terms, "loss/d_", iteration)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_total)
        opt_d.step()
        self.untoggle_optimizer(opt_d)

        # The learning rates this iteration used (the schedulers step to the next one below).
        lr_g, lr_d = opt_g.param_groups[0]["lr"], opt_d.param_groups[0]["lr"]
        for scheduler in self.lr_schedulers():
            scheduler.step()
        if self.ema is not None:
            # Images seen so far by all processes, this step's included.
            batch_images = real.shape[0] * self._world_size()
            images_seen = (iteration + 1) * batch_images
            self.update_ema(self.ema.beta(batch_images, images_seen))

        logs = {f"loss/g_{k}": v.detach() for k, v in g_terms.items()}
        logs.update({f"loss/d_{k}": v.detach() for k, v in d_terms.items()})
        logs["loss/g_total"] = g_total.detach()
        logs["loss/d_total"] = d_total.detach()
        logs["lr/g"] = lr_g
        logs["lr/d"] = lr_d
        self.log_dict(logs, on_step=True, on_epoch=False, batch_size=real.shape[0])
        self.log("g", g_total.detach(), prog_bar=True, on_step=True, batch_size=real.shape[0])
        self.log("d", d_total.detach(), prog_bar=True, on_step=True, batch_size=real.shape[0])

    # ---- EMA --------------------------------------------------------------------------
    def _world_size(self) -> int:
        trainer = self._trainer
        return int(trainer.world_size) if trainer is not None else 1

    @torch.no_grad()
    def update_ema(self, beta: float) -> None:
        """``ema = beta * ema + (1 - beta) * live`` for every parameter; buffers are copied."""
        pairs = [(self.generator_ema, self.generator)]
        if self.encoder is not None:
            pairs.append((self.encoder_ema, self.encoder))
        for ema, live in pairs:
            for p_ema, p in zip(ema.parameters(), live.parameters()):
                p_ema.lerp_(p.detach(), 1.0 - beta)
            for b_ema, b in zip(ema.buffers(), live.buffers()):
                b_ema.copy_(b)

    @torch.no_grad()
    def recalibrate_ema_norms(self, batches: Iterable[Mapping[str, Any]]) -> int:
        """Re-estimate running statistics of the EMA generator on real label maps.

        Averaged weights do not match the live generator's running statistics; a cumulative
        average over ``batches`` (momentum 1/(k+1)) gives the statistics of the EMA weights.
        Returns the number of batches used.
        """
        if self.generator_ema is None:
            return 0
        # InstanceNorm has a running_mean attribute too, set to None: no statistics to redo.
        norms = [
            m for m in self.generator_ema.modules() if getattr(m, "running_mean", None) is not None
        ]
        if not norms:
            return 0
        saved = [m.momentum for m in norms]
        # Only one process re-estimates (rank 0 for samples and evaluation): a synchronised
        # norm would wait for the other ranks' all-reduce forever. Local statistics are what
        # is wanted here, so synced layers run as plain BatchNorm (same buffers) meanwhile.
        classes = [type(m) for m in norms]
        for m in norms:
            if isinstance(m, nn.SyncBatchNorm) or type(m).__name__ == "CPUSyncBatchNorm":
                m.__class__ = nn.BatchNorm2d
        for m in norms:
            m.running_mean.zero_()
            m.running_var.fill_(1.0)
        self.generator_ema.train()
        count = 0
        try:
            for k, batch in enumerate(batches):
                for m in norms:
                    m.momentum = 1.0 / (k + 1)
                batch = {
                    key: v.to(self.device) if torch.is_tensor(v) else v for key, v in batch.items()
                }
                z = None
                if self.encoder_ema is not None and "image" in batch:
                    z = reparameterize(*self.encoder_ema(batch["image"]))
                self.generator_ema(self.label_map(batch), z)
                count += 1
        finally:
            for m, momentum, cls in zip(norms, saved, classes):
                m.momentum = momentum
                m.__class__ = cls
            self.generator_ema.eval()
        return count

    # ---- DDP on CPU -------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        trainer = self._trainer
        if trainer is None or trainer.world_size < 2:
            return
        if trainer.strategy.root_device.type == "cpu":
            use_cpu_sync_batchnorm(self)

    # ---- optimizers -------------------------------------------------------------------
    def configure_optimizers(self):
        o = self.optim_cfg
        betas = (float(o["beta1"]), float(o["beta2"]))
        g_params = list(self.generator.parameters())
        if self.encoder is not None:
            g_params += list(self.encoder.parameters())
        opt_g = torch.optim.Adam(g_params, lr=float(o["lr_g"]), betas=betas)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=float(o["lr_d"]), betas=betas)
        trainer = self._trainer
        max_epochs = float(trainer.max_epochs or 1) if trainer is not None else 1.0
        decay_start = float(o.get("decay_start_epoch", max_epochs))

        def factor(step: int) -> float:
            return lr_factor(step / self._steps_per_epoch(), decay_start, max_epochs)

        schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, factor) for opt in (opt_g, opt_d)]
        return [opt_g, opt_d], [{"scheduler": s, "interval": "step"} for s in schedulers]

    def _steps_per_epoch(self) -> int:
        """Training batches per epoch, known once the trainer has set up its train loader.

        ``configure_optimizers`` runs before that (``num_training_batches`` is still ``inf``)
        and ``LambdaLR`` evaluates the factor of step 0 there: that value (epoch 0) does not
        depend on the count, so an unknown count is used for it but never cached.
        """
        if self.steps_per_epoch is None:
            trainer = self._trainer
            batches = trainer.num_training_batches if trainer is not None else None
            if isinstance(batches, int) and batches > 0:
                self.steps_per_epoch = batches
            else:
                return 1
        return self.steps_per_epoch

    # ---- exact resume -----------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Stored as tensors and plain numbers so the checkpoint loads with weights_only=True.
        _, keys, pos, has_gauss, gauss = np.random.get_state()
        version, internal, py_gauss = random.getstate()
        checkpoint["rng_states"] = {
            "torch": torch.get_rng_state(),
            "numpy": [torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
            "python": [version, torch.tensor(internal, dtype=torch.int64), py_gauss],
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        states = checkpoint.get("rng_states")
        if not states:
            return
        torch.set_rng_state(states["torch"])
        keys, pos, has_gauss, gauss = states["numpy"]
        np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
        version, internal, py_gauss = states["python"]
        random.setstate((version, tuple(int(v) for v in internal.tolist()), py_gauss))


@dataclass
class OasisObjective:
    """Settings and class weights of the OASIS discriminator's loss (``loss.*`` keys).

    ``class_balance=dataset`` counts the classes of the training label maps on first use and
    caches the counts in ``loss.class_stats_cache`` (keyed by a hash of the data config), so a
    dataset without published statistics needs no preparation step.
    """

    num_classes: int
    ignore_index: int | None
    class_balance: ClassBalance
    lambda_labelmix: float
    cache_dir: str | None = None
    dataset_weights: torch.Tensor | None = None

    @classmethod
    def from_config(
        cls, loss_cfg: Mapping[str, Any], discriminator: nn.Module, spec: Any
    ) -> OasisObjective | None:
        lambda_labelmix = float(loss_cfg.get("lambda_labelmix", 0.0))
        if not isinstance(discriminator, OASISDiscriminator):
            if lambda_labelmix > 0:
                raise ValueError(
                    f"loss.lambda_labelmix={lambda_labelmix} needs the OASIS discriminator "
                    "(model=oasis or model=spade_oasis_d); set loss.lambda_labelmix=0"
                )
            return None
        if float(loss_cfg.get("lambda_feat", 0)) > 0:
            raise ValueError(
                f"loss.lambda_feat={loss_cfg['lambda_feat']}: the OASIS discriminator has no "
                "multi-scale features to match; set loss.lambda_feat=0"
            )
        try:
            balance = ClassBalance(loss_cfg.get("class_balance", "batch"))
        except ValueError:
            raise ValueError(
                f"loss.class_balance={loss_cfg.get('class_balance')} must be one of "
                f"{[b.value for b in ClassBalance]}"
            ) from None
        if balance is ClassBalance.dataset and not loss_cfg.get("class_stats_cache"):
            raise ValueError(
                "loss.class_balance=dataset needs loss.class_stats_cache (a directory)"
            )
        return cls(
            num_classes=discriminator.semantic_nc,
            ignore_index=spec.label_nc if spec.contain_dontcare_label else None,
            class_balance=balance,
            lambda_labelmix=lambda_labelmix,
            cache_dir=loss_cfg.get("class_stats_cache"),
        )

    def weights(self, classes: torch.Tensor) -> torch.Tensor:
        if self.class_balance is ClassBalance.batch:
            counts = losses.class_counts(classes, self.num_classes)
            return losses.class_balance_weights(counts, self.ignore_index)
        if self.class_balance is ClassBalance.dataset:
            assert self.dataset_weights is not None, "dataset class counts not loaded"
            return self.dataset_weights.to(classes.device)
        return torch.ones(self.num_classes, device=classes.device)

    def load_dataset_counts(
        self, data_cfg: Mapping[str, Any], labels: Callable[[], Iterable[torch.Tensor]]
    ) -> Path:
        """Read the cached class counts, or count ``labels()`` once and cache them."""
        key = hashlib.sha1(json.dumps(data_cfg, sort_keys=True, default=str).encode())
        path = Path(str(self.cache_dir)).expanduser() / f"class-counts-{key.hexdigest()[:16]}.json"
        if path.is_file():
            counts = torch.tensor(json.loads(path.read_text())["counts"], dtype=torch.float64)
        else:
            counts = torch.zeros(self.num_classes, dtype=torch.float64)
            for label in labels():
                counts += losses.class_counts(label.long(), self.num_classes).double()
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                tmp.write_text(
                    json.dumps({"counts": counts.tolist(), "data": data_cfg}, default=str)
                )
        self.dataset_weights = losses.class_balance_weights(counts, self.ignore_index).float()
        return path

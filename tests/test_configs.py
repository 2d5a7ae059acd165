"""Every config file composes and instantiates; bad choices and keys fail naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from hydra.errors import HydraException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationKeyError

from spadelab import builders
from spadelab.config import (
    CONF_DIR,
    NAMED_GROUPS,
    RENAMED_KEYS,
    group_components,
    group_name,
    without_name,
)
from spadelab.runtime import ConfigError, check_overrides, describe_error, validate_targets

GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir())
CHOICES = [
    (group, path.stem) for group in GROUPS for path in sorted((CONF_DIR / group).glob("*.yaml"))
]
PRIMARY = sorted(p.stem for p in CONF_DIR.glob("*.yaml"))

# Mandatory values (???) a user has to give for some choices; placeholders are enough to compose.
REQUIRED = {
    ("data", "folder"): ["data.dataset.root=/nonexistent", "data.label_nc=4"],
    ("data", "synthetic_hard"): [],  # rendered like synthetic: no root
}
DATASET_ROOT = "data.dataset.root=/nonexistent"


def _overrides(group: str, choice: str) -> list[str]:
    overrides = [f"{group}={choice}"]
    if group != "scale":
        overrides.append("scale=smoke")
    if group == "data":
        # The data configs' own crop sizes are replaced by scale=smoke's 32; 64 keeps every
        # aspect ratio (Cityscapes 2:1) divisible by the generator's 2^5.
        overrides.append("data.crop_size=64")
        overrides += REQUIRED.get((group, choice), [DATASET_ROOT] if choice != "synthetic" else [])
    return overrides


def test_every_group_is_covered() -> None:
    assert {"norm", "modulation", "model", "encoder", "loss", "optim", "scale", "trainer"} <= set(
        GROUPS
    )
    assert {"logger", "callbacks", "data"} <= set(GROUPS)
    assert len(CHOICES) >= 30
    assert "train" in PRIMARY


@pytest.mark.parametrize(("group", "choice"), CHOICES, ids=[f"{g}={c}" for g, c in CHOICES])
def test_every_config_file_composes_and_instantiates(
    compose_train, tmp_path: Path, monkeypatch, group: str, choice: str
) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    cfg = compose_train(*_overrides(group, choice))
    validate_targets(cfg)
    plain = OmegaConf.to_container(cfg, resolve=True)

    # Every group states its choice; instantiating drops it (config.without_name).
    assert group_name(cfg, group) == choice
    # Norm and modulation: partial factories that build a layer.
    norm = instantiate(without_name(cfg.norm))
    layer = instantiate(without_name(cfg.modulation))(
        num_features=4, label_nc=3, param_free_norm=norm
    )
    x = torch.randn(2, 4, 8, 8)
    assert layer(x, torch.ones(2, 3, 8, 8)).shape == x.shape

    if cfg.scale.name == "smoke":
        generator = builders.build_generator(plain)
        discriminator = builders.build_discriminator(plain)
        encoder = builders.build_encoder(plain)
        semantic_nc = builders.label_spec(plain["data"]).semantic_nc
        assert generator.semantic_nc == semantic_nc
        if type(discriminator).__name__ == "OASISDiscriminator":
            # It segments the image alone into the classes + "fake": no label-map input.
            assert discriminator.semantic_nc == semantic_nc
        else:
            assert discriminator.input_nc == semantic_nc + 3
        if encoder is not None:
            assert plain["model"]["generator"]["input_kind"] == "noise"
        datamodule = instantiate(cfg.data)
        assert datamodule is not None

    callbacks = [instantiate(c) for c in group_components(cfg.callbacks)]
    loggers = [instantiate(c) for c in group_components(cfg.logger)]
    assert len(loggers) == len(cfg.logger) - 1  # every entry but the group's name
    trainer = instantiate(
        without_name(cfg.trainer),
        callbacks=callbacks,
        logger=loggers or False,
        default_root_dir=str(tmp_path),
        max_epochs=1,
    )
    assert trainer.max_epochs == 1
    # The loss and optimizer groups are plain numbers read by the module.
    assert plain["loss"]["gan_mode"] in {"hinge", "ls", "original"}
    assert plain["optim"]["lr_g"] > 0 and plain["optim"]["lr_d"] > 0


@pytest.mark.parametrize("choice", [c for g, c in CHOICES if g == "data"])
def test_data_tool_composes_with_every_data_choice(compose_train, choice: str) -> None:
    overrides = [f"data={choice}", *REQUIRED.get(("data", choice), [])]
    if choice not in ("synthetic", "synthetic_hard", "folder"):
        overrides.append(DATASET_ROOT)
    validate_targets(compose_train(*overrides, config_name="data_tool"))


# --- What the presets promise ------------------------------------------------------------------


def test_default_training_config(compose_train) -> None:
    cfg = compose_train()
    assert cfg.norm._target_.endswith("param_free.syncbatch")
    assert cfg.modulation._target_.endswith("modulation.SPADE")
    assert cfg.model.name == "spade_decoder" and cfg.encoder is None
    assert cfg.model.generator.input_kind == "segmap"


def test_pix2pixhd_preset(compose_train) -> None:
    cfg = compose_train("model=pix2pixhd")
    assert cfg.norm._target_.endswith("param_free.instance")
    # The official layout: InstanceNorm without affine after bias-free convs.
    assert cfg.modulation._target_.endswith("modulation.ParamFree")
    assert not cfg.model.generator.conv_bias
    assert cfg.loss.gan_mode == "ls" and not cfg.model.generator.spectral_norm
    # A command-line choice beats the preset's.
    assert compose_train("model=pix2pixhd", "norm=batch").norm._target_.endswith(".batch")


MODELS = [c for g, c in CHOICES if g == "model"]


@pytest.mark.parametrize("model", MODELS)
def test_encoder_vae_switches_the_generator_to_noise(compose_train, model: str) -> None:
    # encoder/generator/vae.yaml, merged after the model preset, writes
    # model.generator.input_kind itself: no global key that presets read back with a default.
    cfg = compose_train(f"model={model}")
    vae = compose_train(f"model={model}", "encoder=vae")
    if "input_kind" not in cfg.model.generator:
        # A generator without a z input cannot take the encoder's: refused, naming the key
        # (the encoder's z_dim has nothing to read, or the generator has no input).
        with pytest.raises((ConfigError, InterpolationKeyError), match=r"model\.generator\."):
            validate_targets(vae)
        return
    assert vae.encoder._target_.endswith("ConvEncoder")
    assert vae.model.generator.input_kind == "noise" and "generator_input" not in vae
    # Without the encoder, only the preset that turns the VAE on itself starts from noise.
    expected = "noise" if cfg.encoder is not None else "segmap"
    assert cfg.model.generator.input_kind == expected, model
    assert (cfg.encoder is not None) == (model == "unpool_vaegan")


MULTISCALE = {
    "_target_": "spadelab.nets.discriminator.MultiscaleDiscriminator",
    "ndf": 32,
    "n_layers": 4,
    "num_D": 2,
    "norm": "instance",
    "spectral_norm": True,
}
OASIS_D = {
    "_target_": "spadelab.nets.oasis.OASISDiscriminator",
    "ndf": 32,
    "num_res_blocks": 6,
    "spectral_norm": True,
}
# Each preset's discriminator at scale=cpu on the synthetic data (label_nc 10 + instance edges),
# composed and counted before conf/model/discriminator/ existed, when every preset spelled it out.
DISCRIMINATORS = {
    "crn": (MULTISCALE, 1_398_850),
    "oasis": (OASIS_D, 5_565_612),
    "pix2pixhd": ({**MULTISCALE, "spectral_norm": False}, 1_398_850),
    "pix2pixhd_pp": (MULTISCALE, 1_398_850),
    "reduced_gaugan": (MULTISCALE, 1_398_850),
    "spade_decoder": (MULTISCALE, 1_398_850),
    "spade_oasis_d": (OASIS_D, 5_565_612),
    "unpool_vaegan": (MULTISCALE, 1_398_850),
}


def test_every_model_preset_is_pinned() -> None:
    assert sorted(DISCRIMINATORS) == MODELS


@pytest.mark.parametrize("model", sorted(DISCRIMINATORS))
def test_model_presets_select_their_discriminator(compose_train, model: str) -> None:
    expected, params = DISCRIMINATORS[model]
    cfg = OmegaConf.to_container(compose_train(f"model={model}"), resolve=True)
    assert cfg["model"]["discriminator"] == expected and "discriminator" not in cfg
    discriminator = builders.build_discriminator(cfg)
    assert sum(p.numel() for p in discriminator.parameters()) == params


def test_discriminator_choices_and_the_deeper_discriminator(compose_train) -> None:
    choices = sorted(p.stem for p in (CONF_DIR / "model" / "discriminator").glob("*.yaml"))
    assert choices == ["multiscale", "oasis"]
    # Table 5's "deeper discriminator": one more layer per scale.
    deeper = OmegaConf.to_container(compose_train("model.discriminator.n_layers=5"), resolve=True)
    assert deeper["model"]["discriminator"] == {**MULTISCALE, "n_layers": 5}
    assert sum(p.numel() for p in builders.build_discriminator(deeper).parameters()) == 5_601_346
    # The group is a choice on the command line; the preset's own settings still apply on top.
    swapped = compose_train("model/discriminator=oasis")
    assert OmegaConf.to_container(swapped.model.discriminator, resolve=True) == OASIS_D
    plain = compose_train("model=pix2pixhd", "model/discriminator=multiscale")
    assert plain.model.discriminator.spectral_norm is False


@pytest.mark.parametrize("data", [c for g, c in CHOICES if g == "data"])
def test_the_data_config_is_the_home_of_num_upsampling_layers(compose_train, data: str) -> None:
    root = [] if data == "synthetic" else [DATASET_ROOT]
    overrides = [f"data={data}", "scale=paper", *REQUIRED.get(("data", data), root)]
    cfg = compose_train(*overrides)
    assert cfg.data.num_upsampling_layers == ("more" if data == "cityscapes" else "normal")
    for model in ("spade_decoder", "spade_oasis_d", "unpool_vaegan"):
        generator = compose_train(*overrides, f"model={model}").model.generator
        assert generator.num_upsampling_layers == cfg.data.num_upsampling_layers, model
    # The small scales undo Cityscapes' extra upsampling, which their sizes cannot hold.
    assert compose_train(*overrides, "scale=smoke").model.generator.num_upsampling_layers == (
        "normal"
    )


def test_reduced_gaugan_preset(compose_train) -> None:
    cfg = compose_train("model=reduced_gaugan")
    assert cfg.norm._target_.endswith("param_free.batch")
    assert cfg.modulation._target_.endswith("modulation.SPADE")
    assert cfg.encoder is None
    assert builders.image_size(OmegaConf.to_container(cfg.data, resolve=True)) == (96, 128)
    assert cfg.loss.lambda_feat == 0


def test_unpool_vaegan_preset(compose_train) -> None:
    cfg = compose_train("model=unpool_vaegan")
    assert cfg.encoder._target_.endswith("ConvEncoder")
    assert cfg.model.generator.input_kind == "noise"
    assert cfg.loss.lambda_kld > 0


# --- Group names, and configs saved before them ---------------------------------------------


def _group_node(group: str, path: Path) -> object:
    """The node a group file puts at ``group`` (``_global_`` files: under that key)."""
    text = path.read_text()
    node = yaml.safe_load(text) or {}
    return node.get(group) if "# @package _global_" in text else node


@pytest.mark.parametrize(("group", "choice"), CHOICES, ids=[f"{g}={c}" for g, c in CHOICES])
def test_every_group_file_states_its_name(group: str, choice: str) -> None:
    # Each file itself, not one it extends (trainer/ddp on trainer/default): the name is the
    # file's stem, as `group=choice` selects it.
    assert group in NAMED_GROUPS
    node = _group_node(group, CONF_DIR / group / f"{choice}.yaml")
    if (group, choice) == ("encoder", "none"):
        assert node is None  # encoder: null, read as "none" (conf/encoder/none.yaml says why)
        assert group_name({"encoder": None}, "encoder") == "none"
        return
    assert isinstance(node, dict) and node.get("name") == choice


def test_name_is_accepted_at_group_roots_only(compose_train) -> None:
    cfg = compose_train("encoder=vae", "trainer=ddp_cpu")
    validate_targets(cfg)  # norm, modulation, encoder, trainer and data carry a name
    with pytest.raises(ConfigError, match=r"unknown key model\.generator\.name for "):
        validate_targets(compose_train("+model.generator.name=x"))
    # A typo next to the name still fails, listing the valid keys (the name among them).
    with pytest.raises(ConfigError) as error:
        validate_targets(compose_train("+norm.epss=1e-3"))
    assert str(error.value).startswith("unknown key norm.epss for spadelab.norm.param_free.")
    assert str(error.value).endswith("valid keys: eps, momentum, name, num_features")
    with pytest.raises(ConfigError, match=r"unknown key trainer\.max_epoch for .*max_epochs"):
        validate_targets(compose_train("+trainer.max_epoch=3"))


def test_without_name_and_group_components(compose_train) -> None:
    cfg = compose_train("modulation=spade", "callbacks=with_eval", "scale=smoke")
    modulation = without_name(cfg.modulation)
    # Resolved against the whole config (the copy has no root to resolve ${scale...} in).
    assert modulation["hidden_channels"] == cfg.scale.spade_hidden and "name" not in modulation
    assert without_name(None) is None and without_name({"a": 1}) == {"a": 1}
    assert without_name({"name": "x", "sub": {"name": "kept"}}) == {"sub": {"name": "kept"}}
    components = list(group_components(cfg.callbacks))
    assert len(components) == 5 and all("_target_" in c for c in components)  # lr_monitor: null
    assert list(group_components(compose_train("logger=none").logger)) == []
    assert list(group_components(None)) == []


def test_the_old_generator_key_fails_naming_the_new_one(compose_train, capsys) -> None:
    # Refused rather than accepted with a warning: one key for the value everywhere (command
    # line, experiments rows, saved configs once upgraded), and a row written with the old key
    # is not silently a different experiment file from one written with the new.
    assert RENAMED_KEYS == {"model.generator.input": "model.generator.input_kind"}
    expected = (
        "model.generator.input was renamed model.generator.input_kind; write "
        "model.generator.input_kind=... instead (e.g. model.generator.input_kind=noise)"
    )
    with pytest.raises(SystemExit) as exit_:
        check_overrides("train", "train", ["run_dir=.", "model.generator.input=noise"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == f"spadelab train: error: {expected}\n"
    # With + (or in an experiments row) it composes, and the target check refuses it.
    with pytest.raises(ConfigError) as error:
        validate_targets(compose_train("+model.generator.input=noise"))
    assert str(error.value) == expected


# --- Errors that name the setting --------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("norm=batchh", ["batch", "instance", "syncbatch", "switchable"]),
        ("scale=hueg", ["smoke", "cpu", "paper"]),
        ("model=foo", ["spade_decoder", "pix2pixhd", "unpool_vaegan"]),
        ("modulation=spaed", ["spade", "concat", "affine"]),
    ],
)
def test_unknown_choice_lists_the_valid_ones(compose_train, override: str, expected: list[str]):
    with pytest.raises(HydraException) as info:
        compose_train(override)
    message = str(info.value)
    assert override.split("=")[1] in message
    for choice in expected:
        assert choice in message


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("+model.generator.ngff=3", "model.generator.ngff"),
        ("+model.discriminator.n_layer=5", "model.discriminator.n_layer"),
        ("+norm.epsilon=1e-3", "norm.epsilon"),
        ("+modulation.kernel=3", "modulation.kernel"),
        ("+encoder.zdim=8", "encoder.zdim"),
    ],
)
def test_unknown_key_fails_validation_naming_it(compose_train, override: str, key: str) -> None:
    overrides = [override] + (["encoder=vae"] if key.startswith("encoder") else [])
    cfg = compose_train(*overrides)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_targets(cfg)


def test_unknown_key_without_plus_is_refused_by_hydra(compose_train) -> None:
    with pytest.raises(HydraException, match="ngff"):
        compose_train("model.generator.ngff=3")


def _build_error(cfg: DictConfig) -> str:
    with pytest.raises(Exception) as info:  # noqa: B017 - Hydra may wrap the ValueError
        builders.build_generator(OmegaConf.to_container(cfg, resolve=True))
    return describe_error(info.value)


def test_bad_ngf_names_the_setting(compose_train) -> None:
    message = _build_error(compose_train("scale=smoke", "model.generator.ngf=-1"))
    assert "model.generator.ngf=-1" in message


def test_bad_width_multiplier_names_the_setting(compose_train) -> None:
    message = _build_error(compose_train("scale=smoke", "model.generator.width_multiplier=0"))
    assert "model.generator.width_multiplier=0" in message


def test_bad_label_nc_names_the_setting(compose_train) -> None:
    message = _build_error(compose_train("scale=smoke", "data.label_nc=0"))
    assert "data.label_nc" in message and "label_nc=0" in message


def test_bad_crop_size_names_the_setting(compose_train) -> None:
    message = _build_error(compose_train("scale=smoke", "data.crop_size=48"))
    assert "data.crop_size" in message and "num_upsampling_layers" in message


@pytest.mark.parametrize(
    "norm", ["batch", "syncbatch", "instance", "switchable", "switchable_inln", "none"]
)
@pytest.mark.parametrize("model", ["spade_decoder", "pix2pixhd"])
def test_smoke_scale_runs_every_norm(compose_train, label_map, model: str, norm: str) -> None:
    """The CI scale must run every row of the norm ablation, including instance norm."""
    cfg = OmegaConf.to_container(
        compose_train("scale=smoke", f"model={model}", f"norm={norm}"), resolve=True
    )
    generator = builders.build_generator(cfg)
    height, width = builders.image_size(cfg["data"])
    out = generator(label_map(2, generator.semantic_nc, height, width))
    assert out.shape == (2, 3, height, width)

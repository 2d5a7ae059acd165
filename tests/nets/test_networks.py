"""Generators, discriminator, encoder and VGG features, built through the real configs."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from omegaconf import OmegaConf
from torchvision.models.vgg import cfgs, make_layers

from spadelab import builders
from spadelab.nets import vgg as vgg_module
from spadelab.nets.crn import CRNGenerator
from spadelab.nets.discriminator import MultiscaleDiscriminator
from spadelab.nets.encoder import ConvEncoder, reparameterize
from spadelab.nets.generators import (
    DecoderContext,
    Pix2PixHDGenerator,
    SPADEGenerator,
    UnpoolSPADEGenerator,
)
from spadelab.nets.oasis import OASISGenerator
from spadelab.norm.clade import CLADE
from spadelab.norm.modulation import SPADE, Affine, Concat, ParamFree
from spadelab.norm.param_free import SyncBatchNorm
from spadelab.norm.switchable import SwitchableNorm

CONF = Path(__file__).resolve().parents[2] / "conf"
# Every file of the groups: a new backend is built and trained with every generator at once.
NORMS = sorted(p.stem for p in (CONF / "norm").glob("*.yaml"))
MODULATIONS = sorted(p.stem for p in (CONF / "modulation").glob("*.yaml"))
# Overrides per generator preset on top of scale=smoke. The SPADE decoders start at
# crop / 2^5: 64 gives them a 2x2 first map (instance norm needs more than one pixel);
# reduced_gaugan keeps its own 128x96 geometry. The encoder choices are explicit so these
# tests exercise the networks, whatever the presets' defaults lists do (tests/test_configs.py
# checks those).
GENERATORS = {
    "spade_decoder": ["data.crop_size=64"],
    "pix2pixhd": [],
    "unpool_vaegan": ["data.crop_size=64", "encoder=vae"],
    "reduced_gaugan": ["encoder=none"],
    # 3D noise cannot enter CLADE (tests/nets/test_clade.py): the grid runs OASIS without it.
    "oasis": ["data.crop_size=64", "model.generator.noise_3d=false"],
    "crn": ["data.crop_size=64"],
}
GENERATOR_CLASS = {
    "spade_decoder": SPADEGenerator,
    "pix2pixhd": Pix2PixHDGenerator,
    "unpool_vaegan": UnpoolSPADEGenerator,
    "reduced_gaugan": SPADEGenerator,
    "oasis": OASISGenerator,
    "crn": CRNGenerator,
}
EXPECTED_SIZE = {
    "spade_decoder": (64, 64),
    "pix2pixhd": (32, 32),
    "unpool_vaegan": (64, 64),
    "reduced_gaugan": (96, 128),
    "oasis": (64, 64),
    "crn": (64, 64),
}
MODULATION_CLASS = {
    "spade": SPADE,
    "concat": Concat,
    "affine": Affine,
    "param_free": ParamFree,
    "clade": CLADE,
    "clade_icpe": CLADE,
}


def _is_norm(module: nn.Module, norm: str) -> bool:
    if norm == "batch":
        return type(module) is nn.BatchNorm2d
    if norm == "syncbatch":
        return type(module) is SyncBatchNorm
    if norm == "instance":
        return isinstance(module, nn.InstanceNorm2d)
    if norm in ("switchable", "switchable_inln"):
        return isinstance(module, SwitchableNorm) and module.use_batch_stats == (
            norm == "switchable"
        )
    return type(module) is nn.Identity


def _config(compose_train, *overrides: str) -> dict:
    cfg = compose_train("scale=smoke", *overrides)
    return OmegaConf.to_container(cfg, resolve=True)


@pytest.mark.parametrize(
    ("generator", "norm", "modulation"),
    list(itertools.product(GENERATORS, NORMS, MODULATIONS)),
)
def test_every_generator_norm_modulation_builds_and_trains(
    compose_train, label_map, generator: str, norm: str, modulation: str
) -> None:
    torch.manual_seed(0)
    cfg = _config(
        compose_train,
        f"norm={norm}",
        f"modulation={modulation}",
        f"model={generator}",
        *GENERATORS[generator],
    )
    net = builders.build_generator(cfg)
    assert type(net) is GENERATOR_CLASS[generator]

    # The norm and modulation groups reach every norm layer (presets may override them).
    layers = [m for m in net.modules() if isinstance(m, (SPADE, Concat, Affine, ParamFree, CLADE))]
    layers = [m for m in layers if not any(m is getattr(o, "affine", None) for o in layers)]
    assert layers and all(type(m) is MODULATION_CLASS[modulation] for m in layers)
    for layer in layers:
        inner = layer.affine if isinstance(layer, Concat) else layer
        assert _is_norm(inner.param_free_norm, norm), type(inner.param_free_norm)

    height, width = builders.image_size(cfg["data"])
    assert (height, width) == EXPECTED_SIZE[generator]
    semantic_nc = builders.label_spec(cfg["data"]).semantic_nc
    labels = label_map(2, semantic_nc, height, width, seed=1)
    out = net(labels)
    assert out.shape == (2, 3, height, width)
    assert out.abs().max() <= 1 and torch.isfinite(out).all()
    weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(2))
    (out * weight).sum().backward()

    missing = [name for name, p in net.named_parameters() if p.grad is None]
    assert not missing, f"no gradient reaches {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())
    if norm != "none":
        # Without normalization, 0.02-gain activations shrink layer after layer and deep
        # gradients underflow to exact zeros; with any norm every parameter must get one.
        # CLADE-ICPE's beta = bias[class] * (1 + dist_conv_b(map)) with the class biases zero at
        # init (official ClassAffine): dist_conv_b's first gradient is exactly zero.
        dead = [
            name
            for name, p in net.named_parameters()
            if not p.grad.any() and ".dist_conv_b." not in name
        ]
        assert not dead, f"zero gradient for {dead[:5]}"

    net.eval()
    with torch.no_grad():
        assert net(labels).shape == (2, 3, height, width)


def test_noise_input_uses_z(compose_train, label_map) -> None:
    cfg = _config(compose_train, "model=spade_decoder", "model.generator.input_kind=noise")
    net = builders.build_generator(cfg).eval()
    labels = label_map(2, net.semantic_nc, 32, 32)
    z = torch.randn(2, net.z_dim)
    with torch.no_grad():
        out = net(labels, z)
        torch.testing.assert_close(net(labels, z), out)
        assert not torch.allclose(net(labels, z + 1), out)


# --- Geometry ------------------------------------------------------------------------------


def test_aspect_ratio_two_runs(compose_train, label_map) -> None:
    cfg = _config(
        compose_train,
        "model=spade_decoder",
        "data.crop_size=64",
        "data.aspect_ratio=2.0",
        "data.preprocess_mode=fixed",
    )
    assert builders.image_size(cfg["data"]) == (32, 64)
    net = builders.build_generator(cfg)
    assert (net.sh, net.sw) == (1, 2)
    out = net(label_map(2, net.semantic_nc, 32, 64))
    assert out.shape == (2, 3, 32, 64)


@pytest.mark.parametrize(
    ("upsamplings", "latent"), [("normal", (8, 16)), ("more", (4, 8)), ("most", (2, 4))]
)
def test_cityscapes_geometry(compose_train, upsamplings: str, latent: tuple[int, int]) -> None:
    cfg = _config(
        compose_train,
        "data=cityscapes",
        "data.dataset.root=/nonexistent",
        "data.crop_size=512",
        "modulation=affine",
        f"model.generator.num_upsampling_layers={upsamplings}",
    )
    assert builders.image_size(cfg["data"]) == (256, 512)
    net = builders.build_generator(cfg)
    assert (net.sh, net.sw) == latent
    assert (net.sh * 2**net.num_up, net.sw * 2**net.num_up) == (256, 512)


def test_cityscapes_at_paper_scale_uses_one_more_upsampling(compose_train) -> None:
    cfg = OmegaConf.to_container(
        compose_train(
            "data=cityscapes",
            "scale=paper",
            "data.dataset.root=/nonexistent",
            "model.generator.ngf=2",  # the paper's geometry, a cheap width
            "modulation=affine",
        ),
        resolve=True,
    )
    assert cfg["model"]["generator"]["num_upsampling_layers"] == "more"
    net = builders.build_generator(cfg)
    assert (net.sh, net.sw) == (4, 8)


@pytest.mark.parametrize(
    ("upsamplings", "size", "num_up"), [("normal", 32, 5), ("more", 64, 6), ("most", 128, 7)]
)
def test_num_upsampling_layers(
    compose_train, label_map, upsamplings: str, size: int, num_up: int
) -> None:
    cfg = _config(
        compose_train,
        "modulation=affine",
        "norm=batch",
        f"data.crop_size={size}",
        f"model.generator.num_upsampling_layers={upsamplings}",
    )
    net = builders.build_generator(cfg)
    assert net.num_up == num_up and (net.sh, net.sw) == (1, 1)
    assert hasattr(net, "up_4") == (upsamplings == "most")
    sizes: dict[str, int] = {}
    for name in net.block_names:
        getattr(net, name).register_forward_pre_hook(
            lambda module, args, name=name: sizes.__setitem__(name, args[0].shape[-1])
        )
    out = net(label_map(2, net.semantic_nc, size, size))
    assert out.shape == (2, 3, size, size)
    assert sizes["head_0"] == 1
    # Every upsampling comes before a block and doubles: the last block runs at full size.
    assert sizes[net.block_names[-1]] == size
    ordered = [sizes[name] for name in net.block_names]
    assert sum(b == 2 * a for a, b in zip(ordered, ordered[1:])) == num_up
    # G_middle_1 is preceded by an upsampling only in "more" and "most".
    assert (sizes["G_middle_1"] == 2 * sizes["G_middle_0"]) == (upsamplings != "normal")
    # Not divisible: a readable error naming the setting.
    with pytest.raises(ValueError, match="num_upsampling_layers"):
        SPADEGenerator(
            net.semantic_nc,
            (size // 2, size // 2),
            lambda c: None,
            ngf=1,
            num_upsampling_layers=upsamplings,
        )


def test_unpool_generator_uses_max_unpool(compose_train, label_map) -> None:
    torch.manual_seed(0)
    cfg = _config(
        compose_train, "model=unpool_vaegan", "encoder=vae", "data.crop_size=64", "norm=batch"
    )
    net = builders.build_generator(cfg)
    assert isinstance(net, UnpoolSPADEGenerator)
    inputs: dict[str, torch.Tensor] = {}
    for name in net.block_names:
        getattr(net, name).register_forward_pre_hook(
            lambda module, args, name=name: inputs.__setitem__(name, args[0].detach())
        )

    def cells(x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return (
            x.view(n, c, h // 2, 2, w // 2, 2)
            .permute(0, 1, 2, 4, 3, 5)
            .reshape(n, c, h // 2, w // 2, 4)
        )

    def unpool_positions(labels: torch.Tensor) -> dict[str, torch.Tensor]:
        inputs.clear()
        out = net(labels)
        assert out.shape == (2, 3, 64, 64)
        positions = {}
        # Five upsamplings (normal): the first four unpool, the last (before up_3) is nearest.
        for name in ["G_middle_0", "up_0", "up_1", "up_2"]:
            nonzero = cells(inputs[name]) != 0
            assert (nonzero.sum(-1) == 1).all(), f"{name}: not one value per 2x2 cell"
            where = nonzero.float().argmax(-1)
            # One index map serves every channel.
            assert (where == where[:, :1]).all()
            positions[name] = where[:, 0]
        last = cells(inputs["up_3"])
        assert (last == last[..., :1]).all(), "the last upsampling is nearest"
        return positions

    first = unpool_positions(label_map(2, net.semantic_nc, 64, 64, seed=0))
    second = unpool_positions(label_map(2, net.semantic_nc, 64, 64, seed=5, blocks=8))
    # The unpool positions come from the label map.
    assert any(not torch.equal(first[k], second[k]) for k in first)
    assert inputs["up_3"].shape[-2:] == (64, 64)

    # The typed context: the label features for the first block and one index map per unpool.
    labels = label_map(2, net.semantic_nc, 64, 64, seed=0)
    context = net.decoder_context(labels)
    assert isinstance(context, DecoderContext) and len(context.unpool_indices) == net.num_up - 1
    assert context.features is not None
    assert context.features.shape == (2, net.head_0.in_channels, net.sh, net.sw)
    plain = builders.build_generator(_config(compose_train, "data.crop_size=64", "norm=batch"))
    assert type(plain) is SPADEGenerator and plain.decoder_context(labels) == DecoderContext()


# --- Discriminator ---------------------------------------------------------------------------


@pytest.mark.parametrize(("n_layers", "num_D"), [(4, 2), (5, 2), (3, 3)])
@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
def test_discriminator_features(label_map, n_layers: int, num_D: int, norm: str) -> None:
    semantic_nc = 6
    net = MultiscaleDiscriminator(semantic_nc, ndf=4, n_layers=n_layers, num_D=num_D, norm=norm)
    assert net.input_nc == semantic_nc + 3
    first_conv = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.in_channels == semantic_nc + 3
    image = torch.randn(2, 3, 32, 32, requires_grad=True)
    outputs = net(label_map(2, semantic_nc, 32, 32), image)
    assert len(outputs) == num_D
    for features in outputs:
        assert len(features) == n_layers + 1
        assert features[-1].shape[:2] == (2, 1), "the last feature is the patch logits"
        assert all(f.shape[1] > 1 for f in features[:-1])
    # Each further scale sees the input downsampled by 2.
    assert outputs[1][0].shape[-1] < outputs[0][0].shape[-1]
    sum(f[-1].mean() for f in outputs).backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    with pytest.raises(RuntimeError):
        net(label_map(2, semantic_nc + 1, 32, 32), image)


def test_discriminator_from_config(compose_train) -> None:
    cfg = _config(compose_train, "model.discriminator.n_layers=5")
    net = builders.build_discriminator(cfg)
    semantic_nc = builders.label_spec(cfg["data"]).semantic_nc
    assert net.input_nc == semantic_nc + 3
    assert any(name.endswith("weight_orig") for name, _ in net.named_parameters())
    outputs = net(torch.zeros(1, semantic_nc, 32, 32), torch.zeros(1, 3, 32, 32))
    assert [len(f) for f in outputs] == [6, 6]
    with pytest.raises(ValueError, match="n_layers"):
        MultiscaleDiscriminator(semantic_nc, n_layers=0)


# --- Encoder -------------------------------------------------------------------------------


def test_encoder_shapes_and_resizing() -> None:
    torch.manual_seed(0)
    encoder = ConvEncoder(ngf=4, z_dim=8, input_size=16)
    assert encoder.num_layers == 2
    mu, logvar = encoder(torch.randn(3, 3, 16, 16))
    assert mu.shape == logvar.shape == (3, 8)
    assert not torch.allclose(mu, logvar)
    # Images at another size are resized to input_size first.
    mu_big, _ = encoder(torch.randn(3, 3, 40, 40))
    assert mu_big.shape == (3, 8)
    with pytest.raises(ValueError, match="encoder.input_size"):
        ConvEncoder(input_size=24)
    with pytest.raises(ValueError, match="encoder.input_size"):
        ConvEncoder(input_size=0)


def test_encoder_from_config(compose_train) -> None:
    cfg = _config(compose_train, "encoder=vae")
    encoder = builders.build_encoder(cfg)
    assert isinstance(encoder, ConvEncoder)
    assert encoder.input_size == cfg["scale"]["encoder_input_size"]
    assert encoder.z_dim == cfg["model"]["generator"]["z_dim"]
    assert cfg["model"]["generator"]["input_kind"] == "noise"
    assert builders.build_encoder(_config(compose_train, "encoder=none")) is None


def test_reparameterization() -> None:
    mu = torch.full((20000, 2), 3.0, requires_grad=True)
    logvar = torch.full((20000, 2), float(torch.log(torch.tensor(4.0))), requires_grad=True)
    torch.manual_seed(0)
    z = reparameterize(mu, logvar)
    torch.manual_seed(0)
    eps = torch.randn_like(mu)
    torch.testing.assert_close(z, mu + eps * 2.0)
    assert abs(z.mean().item() - 3.0) < 0.05 and abs(z.std().item() - 2.0) < 0.05
    z.sum().backward()
    torch.testing.assert_close(mu.grad, torch.ones_like(mu))
    torch.testing.assert_close(logvar.grad, eps.detach() * 0.5 * 2.0)


# --- VGG19 features ----------------------------------------------------------------------------

# torchvision's vgg19 layer pattern with 1/64 of its widths: same indices, a few KB.
TINY_CFG = [v if v == "M" else v // 64 for v in cfgs["E"]]


class TinyVGG19(nn.Module):
    def __init__(self, weights: object = None) -> None:
        super().__init__()
        self.features = make_layers(TINY_CFG)
        self.classifier = nn.Sequential(nn.Linear(8, 2))


def test_slices_end_at_relu_x_1() -> None:
    features = make_layers(TINY_CFG)
    relu_k_1 = []
    pools = 0
    for i, layer in enumerate(features):
        if isinstance(layer, nn.MaxPool2d):
            pools += 1
        elif isinstance(layer, nn.ReLU) and len(relu_k_1) == pools:
            relu_k_1.append(i + 1)
    assert tuple(relu_k_1) == vgg_module.SLICE_ENDS


def test_vgg_features_load_a_local_state_dict(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(vgg_module, "vgg19", TinyVGG19)
    torch.manual_seed(0)
    source = TinyVGG19()
    path = tmp_path / "vgg19.pth"
    torch.save(source.state_dict(), path)
    net = vgg_module.VGG19Features(str(path))
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    features = net(image)
    assert [f.shape[1] for f in features] == [1, 2, 4, 8, 8]
    assert [f.shape[-1] for f in features] == [32, 16, 8, 4, 2]
    assert all((f >= 0).all() for f in features)
    # The saved weights are the ones used.
    torch.testing.assert_close(features[0], torch.relu(source.features[0](image)))
    assert not any(p.requires_grad for p in net.parameters())
    assert not net.train().training
    # normalize_input maps [-1, 1] to ImageNet statistics first.
    normalized = vgg_module.VGG19Features(str(path), normalize_input=True)(image)[0]
    mean = torch.tensor(vgg_module.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(vgg_module.IMAGENET_STD).view(1, 3, 1, 1)
    expected = torch.relu(source.features[0](((image + 1) / 2 - mean) / std))
    torch.testing.assert_close(normalized, expected)


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_vgg_features_keep_only_the_features(tmp_path: Path, monkeypatch, zip_format) -> None:
    """The classifier of the weights file is neither built nor kept, in either file format.

    torchvision's own vgg19-dcbb9e9d.pth predates torch's zip format: it cannot be
    memory-mapped and is read whole; a zip-format file is mapped.
    """
    monkeypatch.setattr(vgg_module, "vgg19", TinyVGG19)
    torch.manual_seed(0)
    source = TinyVGG19()
    path = tmp_path / "vgg19.pth"
    torch.save(source.state_dict(), path, _use_new_zipfile_serialization=zip_format)
    net = vgg_module.VGG19Features(str(path))
    assert not any(p.is_meta for p in net.parameters())
    used = source.features[: vgg_module.SLICE_ENDS[-1]]  # up to relu5_1
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in used.parameters())
    for mine, theirs in zip(net.parameters(), used.parameters(), strict=True):
        torch.testing.assert_close(mine, theirs)
    # A file holding only the features is enough: the classifier is never looked at.
    features_only = tmp_path / "features.pth"
    torch.save(
        {k: v for k, v in source.state_dict().items() if k.startswith("features.")}, features_only
    )
    vgg_module.VGG19Features(str(features_only))


def test_vgg_weights_errors_name_the_setting(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(vgg_module, "vgg19", TinyVGG19)
    with pytest.raises(ValueError, match="loss.vgg_weights"):
        vgg_module.VGG19Features(None)
    with pytest.raises(FileNotFoundError, match="loss.vgg_weights"):
        vgg_module.VGG19Features(str(tmp_path / "missing.pth"))
    wrong = tmp_path / "wrong.pth"
    torch.save(nn.Linear(2, 2).state_dict(), wrong)
    with pytest.raises(ValueError, match="loss.vgg_weights"):
        vgg_module.VGG19Features(str(wrong))

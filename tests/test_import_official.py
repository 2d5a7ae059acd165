"""``spadelab import-official``: official names and shapes, round trip, same outputs, errors.

The official networks are re-implemented here as plain functions of an official-named state
dict (``torch.nn.functional`` only), independently of ``spadelab.nets``, so the equality tests
check our modules against the official computation rather than against themselves.
"""

from __future__ import annotations

import functools
import math
import re
import shlex
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from spadelab import cli as spadelab_cli
from spadelab.commands.import_official import (
    DATASETS,
    SETTINGS,
    USAGE,
    cli,
    convert_official,
    import_official,
    official_config,
    old_form,
    parse_cli,
)
from spadelab.module import SemanticSynthesis

TSV = Path(__file__).resolve().parent / "fixtures" / "official_spade_state_dict_keys.tsv"

# Small settings of the official architectures: same names, a few MB instead of 400.
# Small crops with a 2x2 latent (1x2 for Cityscapes' aspect 2), so the latent's layout (the
# VAE's fc view, height vs width) is tested, not only a single position.
SMALL = {
    "ade20k": {"ngf": 8, "ndf": 8, "crop_size": 64},
    "coco_stuff": {"ngf": 8, "ndf": 8, "crop_size": 64, "encoder_input_size": 16},
    "cityscapes": {"ngf": 8, "ndf": 8, "crop_size": 128},
}
NUM_UP = {"normal": 5, "more": 6, "most": 7}


# ---- helpers ------------------------------------------------------------------------------------
def read_tsv() -> dict[str, list[tuple[str, tuple[int, ...]]]]:
    """{"ade20k netG": [(key, shape), ...], ...} in the file's (state_dict) order."""
    sections: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
    current = None
    for line in TSV.read_text().splitlines():
        header = re.match(r"^# (\w+ net[GDE]) \(", line)
        if header:
            current = header[1]
            sections[current] = []
        elif line.strip() and not line.startswith("#"):
            assert current is not None, f"{TSV}: entry before any section header: {line}"
            key, shape = line.split("\t")
            dims = tuple(int(d) for d in shape.strip("()").split(",") if d.strip())
            sections[current].append((key, dims))
    return sections


def build_meta(dataset: str, use_vae: bool, **small: int) -> SemanticSynthesis:
    """The module the importer builds, on the meta device: shapes without memory."""
    with torch.device("meta"):
        return SemanticSynthesis(official_config(dataset, use_vae, **small))


def official_shapes(dataset: str, use_vae: bool, **small: int) -> dict[str, dict[str, tuple]]:
    return _official_shapes(dataset, use_vae, tuple(sorted(small.items())))


@functools.cache
def _official_shapes(
    dataset: str, use_vae: bool, small: tuple[tuple[str, int], ...]
) -> dict[str, dict[str, tuple]]:
    # Cached: composing a config costs more than everything else a small import does.
    module = build_meta(dataset, use_vae, **dict(small))
    nets = {"G": module.generator, "D": module.discriminator, "E": module.encoder}
    return {
        role: {k: tuple(v.shape) for k, v in net.state_dict().items()}
        for role, net in nets.items()
        if net is not None
    }


def random_official_state(shapes: dict[str, tuple], seed: int) -> dict[str, torch.Tensor]:
    """Random weights with the statistics of a trained checkpoint where it matters.

    Spectral-norm vectors come from power iteration on the weight (as training leaves them), so
    sigma = u^T W v is the top singular value, not a random number near zero.
    """
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in shapes.items():
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "num_batches_tracked":
            state[key] = torch.randint(1, 1000, (), generator=gen)
        elif leaf == "running_var":
            state[key] = torch.rand(shape, generator=gen) + 0.5
        elif leaf in ("running_mean", "bias"):
            state[key] = torch.randn(shape, generator=gen) * 0.1
        elif leaf in ("weight", "weight_orig"):
            fan_in = math.prod(shape[1:])
            state[key] = torch.randn(shape, generator=gen) / math.sqrt(fan_in)
    for key in [k for k in state if k.endswith(".weight_orig")]:
        prefix = key[: -len("weight_orig")]
        matrix = state[key].flatten(1)
        v = F.normalize(torch.randn(matrix.shape[1], generator=gen), dim=0)
        for _ in range(3):
            u = F.normalize(matrix @ v, dim=0)
            v = F.normalize(matrix.t() @ u, dim=0)
        state[prefix + "weight_u"], state[prefix + "weight_v"] = u, v
    assert set(state) == set(shapes), set(shapes) ^ set(state)
    return {k: state[k] for k in shapes}


def make_official_folder(
    folder: Path, dataset: str, use_vae: bool, seed: int = 0, prefix: str = "latest"
) -> dict[str, dict[str, torch.Tensor]]:
    """A fake official checkpoint folder; D saved from "DataParallel", E in the legacy format."""
    folder.mkdir(parents=True, exist_ok=True)
    states = {}
    for i, (role, shapes) in enumerate(
        official_shapes(dataset, use_vae, **SMALL[dataset]).items()
    ):
        states[role] = random_official_state(shapes, seed + i)
        path = folder / f"{prefix}_net_{role}.pth"
        if role == "D":
            torch.save({f"module.{k}": v for k, v in states[role].items()}, path)
        elif role == "E":
            # Official 2019 checkpoints predate torch's zip format.
            torch.save(states[role], path, _use_new_zipfile_serialization=False)
        else:
            torch.save(states[role], path)
    return states


def one_hot_input(dataset: str, size: tuple[int, int], seed: int) -> torch.Tensor:
    """A random label map as the official networks see it: one-hot (+ instance edges)."""
    spec = DATASETS[dataset]
    gen = torch.Generator().manual_seed(seed)
    values = spec.label_nc + int(spec.contain_dontcare_label)
    # Blocky labels, so nearest downsampling sees regions rather than noise.
    coarse = torch.randint(0, values, (1, 1, size[0] // 8, size[1] // 8), generator=gen)
    label = F.interpolate(coarse.float(), size=size, mode="nearest").long()
    channels = [F.one_hot(label[:, 0], values).permute(0, 3, 1, 2).float()]
    if spec.use_instance:
        channels.append((torch.rand(1, 1, *size, generator=gen) < 0.1).float())
    return torch.cat(channels, dim=1)


# ---- the official networks as functions of their state dicts ------------------------------------
def sn_weight(sd: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    """The weight torch's spectral-norm hook uses in eval mode: stored u and v, no iteration."""
    if prefix + ".weight_orig" not in sd:
        return sd[prefix + ".weight"]
    weight = sd[prefix + ".weight_orig"]
    u, v = sd[prefix + ".weight_u"], sd[prefix + ".weight_v"]
    sigma = torch.dot(u, torch.mv(weight.flatten(1), v))
    return weight / sigma


def conv(sd: dict, prefix: str, x: torch.Tensor, padding: int, stride: int = 1) -> torch.Tensor:
    return F.conv2d(x, sn_weight(sd, prefix), sd.get(prefix + ".bias"), stride, padding)


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


def ref_spade(sd: dict, prefix: str, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
    normalized = F.batch_norm(
        x,
        sd[prefix + ".param_free_norm.running_mean"],
        sd[prefix + ".param_free_norm.running_var"],
        training=False,
        eps=1e-5,
    )
    seg = F.interpolate(seg, size=x.shape[2:], mode="nearest")
    actv = F.relu(conv(sd, prefix + ".mlp_shared.0", seg, 1))
    gamma = conv(sd, prefix + ".mlp_gamma", actv, 1)
    beta = conv(sd, prefix + ".mlp_beta", actv, 1)
    return normalized * (1 + gamma) + beta


def ref_resblock(sd: dict, prefix: str, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
    if prefix + ".conv_s.weight_orig" in sd:
        x_s = conv(sd, prefix + ".conv_s", ref_spade(sd, prefix + ".norm_s", x, seg), 0)
    else:
        x_s = x
    dx = conv(sd, prefix + ".conv_0", lrelu(ref_spade(sd, prefix + ".norm_0", x, seg)), 1)
    dx = conv(sd, prefix + ".conv_1", lrelu(ref_spade(sd, prefix + ".norm_1", dx, seg)), 1)
    return x_s + dx


def ref_generator(
    sd: dict,
    seg: torch.Tensor,
    z: torch.Tensor | None,
    crop_size: int,
    aspect_ratio: float,
    num_upsampling_layers: str,
) -> torch.Tensor:
    sw = crop_size // 2 ** NUM_UP[num_upsampling_layers]
    sh = round(sw / aspect_ratio)

    def up(t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(t, scale_factor=2, mode="nearest")

    if z is not None:
        x = F.linear(z, sd["fc.weight"], sd["fc.bias"]).view(z.shape[0], -1, sh, sw)
    else:
        x = conv(sd, "fc", F.interpolate(seg, size=(sh, sw), mode="nearest"), 1)
    x = ref_resblock(sd, "head_0", x, seg)
    x = ref_resblock(sd, "G_middle_0", up(x), seg)
    if num_upsampling_layers in ("more", "most"):
        x = up(x)
    x = ref_resblock(sd, "G_middle_1", x, seg)
    for name in ("up_0", "up_1", "up_2", "up_3"):
        x = ref_resblock(sd, name, up(x), seg)
    if num_upsampling_layers == "most":
        x = ref_resblock(sd, "up_4", up(x), seg)
    return torch.tanh(conv(sd, "conv_img", lrelu(x), 1))


def ref_encoder(
    sd: dict, image: torch.Tensor, input_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    x = F.interpolate(image, size=(input_size, input_size), mode="bilinear")
    i = 1
    while f"layer{i}.0.weight_orig" in sd:
        x = x if i == 1 else lrelu(x)
        x = F.instance_norm(conv(sd, f"layer{i}.0", x, padding=1, stride=2), eps=1e-5)
        i += 1
    x = lrelu(x).flatten(1)
    return (
        F.linear(x, sd["fc_mu.weight"], sd["fc_mu.bias"]),
        F.linear(x, sd["fc_var.weight"], sd["fc_var.bias"]),
    )


def ref_discriminator(sd: dict, seg: torch.Tensor, image: torch.Tensor) -> list[torch.Tensor]:
    """The patch logits of every scale (the last feature of each NLayerDiscriminator)."""
    x = torch.cat([seg, image], dim=1)
    logits, scale = [], 0
    while f"discriminator_{scale}.model0.0.weight" in sd:
        if scale:
            x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
        p = f"discriminator_{scale}"
        n_layers = sum(
            1 for k in sd if re.fullmatch(rf"{p}\.model\d+\.0\.(0\.)?weight(_orig)?", k)
        )
        n_layers -= 1  # the last module is the 1-channel output conv
        h = lrelu(conv(sd, f"{p}.model0.0", x, 2, stride=2))
        for n in range(1, n_layers):
            stride = 1 if n == n_layers - 1 else 2
            h = lrelu(F.instance_norm(conv(sd, f"{p}.model{n}.0.0", h, 2, stride), eps=1e-5))
        logits.append(conv(sd, f"{p}.model{n_layers}.0", h, 2))
        scale += 1
    return logits


# ---- 1. official names and shapes ---------------------------------------------------------------
def test_paper_networks_match_the_official_state_dict_layout() -> None:
    sections = read_tsv()
    assert set(sections) == {"ade20k netG", "ade20k netD", "coco netG", "coco netD", "coco netE"}
    for dataset, use_vae, tag in (("ade20k", False, "ade20k"), ("coco_stuff", True, "coco")):
        module = build_meta(dataset, use_vae)  # ngf 64, crop 256: the importer's defaults
        nets = {"G": module.generator, "D": module.discriminator, "E": module.encoder}
        for role, net in nets.items():
            name = f"{tag} net{role}"
            if name not in sections:
                assert net is None, f"{dataset}: the official network has no encoder"
                continue
            ours = [(k, tuple(v.shape)) for k, v in net.state_dict().items()]
            theirs = sections[name]
            assert dict(ours) == dict(theirs), (
                f"{name}: missing {sorted(set(dict(theirs)) - set(dict(ours)))[:5]}, "
                f"extra {sorted(set(dict(ours)) - set(dict(theirs)))[:5]}, shapes differ at "
                f"{[k for k, s in ours if dict(theirs).get(k, s) != s][:5]}"
            )
            assert ours == theirs, f"{name}: same keys, different order"
        # The small test settings keep the official names (only the widths change); the small
        # encoder has fewer stride-2 layers (log2(input_size / 4)), each named as officially.
        small = official_shapes(dataset, use_vae, **SMALL[dataset])
        for role, shapes in small.items():
            names = [k for k, _ in sections[f"{tag} net{role}"]]
            if role == "E":
                assert list(shapes) == [k for k in names if k in shapes]
            else:
                assert list(shapes) == names


def test_cityscapes_config_is_the_official_geometry() -> None:
    module = build_meta("cityscapes", False)
    generator = module.generator
    assert generator.num_up == 6 and generator.upsample_before["G_middle_1"]
    assert (generator.sh, generator.sw) == (4, 8)  # 256x512 from 4x8 with six upsamplings
    ade = build_meta("ade20k", False).generator.state_dict()
    ours = generator.state_dict()
    assert list(ours) == list(ade)  # "more" adds an upsampling, not a block
    assert ours["fc.weight"].shape == (1024, 36, 3, 3)  # 35 label ids + instance edge
    assert module.discriminator.input_nc == 39


# ---- 2. round trip ------------------------------------------------------------------------------
def test_round_trip_every_tensor(tmp_path: Path) -> None:
    source = make_official_folder(tmp_path / "coco_pretrained", "coco_stuff", use_vae=True)
    result = convert_official(
        tmp_path / "coco_pretrained", "coco_stuff", True, tmp_path / "run", **SMALL["coco_stuff"]
    )
    assert result.checkpoint == tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert result.loaded == ("G", "D", "E") and result.random == ()
    assert (tmp_path / "run" / "config.yaml").is_file()

    raw = torch.load(result.checkpoint, map_location="cpu", weights_only=True)
    assert raw["spadelab_import"]["dataset"] == "coco_stuff"
    assert raw["spadelab_import"]["use_vae"] is True
    assert raw["hyper_parameters"]["cfg"]["run_dir"] == str((tmp_path / "run").resolve())
    assert raw["epoch"] == 0 and raw["global_step"] == 0

    module = SemanticSynthesis.load_from_checkpoint(result.checkpoint, map_location="cpu")
    nets = {"G": module.generator, "D": module.discriminator, "E": module.encoder}
    for role, state in source.items():
        loaded = nets[role].state_dict()
        assert list(loaded) == list(state), role
        for key, value in state.items():
            assert torch.equal(loaded[key], value), f"{role} {key}"


def test_generator_file_and_dispatcher(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``*_net_G.pth`` source through ``spadelab import-official``; no D file -> random D."""
    states = make_official_folder(tmp_path / "ade", "ade20k", use_vae=False, prefix="20")
    (tmp_path / "ade" / "20_net_D.pth").unlink()
    out = tmp_path / "ade.ckpt"
    small = SMALL["ade20k"]
    argv = [
        "import-official",
        f"ckpt={tmp_path / 'ade' / '20_net_G.pth'}",
        "dataset=ade20k",
        f"out={out}",
        *(f"{k}={v}" for k, v in small.items()),
        "data.dataset.root=/data/ADEChallengeData2016",
    ]
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # the dispatcher rewrites sys.argv
    assert spadelab_cli.main(argv) == 0
    assert "random init: discriminator" in capsys.readouterr().out
    module = SemanticSynthesis.load_from_checkpoint(out, map_location="cpu")
    assert module.cfg["data"]["dataset"]["root"] == "/data/ADEChallengeData2016"
    assert module.cfg["data"]["dataset"]["other_last"] is False
    assert module.encoder is None
    for key, value in states["G"].items():
        assert torch.equal(module.generator.state_dict()[key], value), key


# ---- 3. same outputs as the official networks ---------------------------------------------------
@pytest.mark.parametrize(
    ("dataset", "use_vae"), [("ade20k", False), ("coco_stuff", True), ("cityscapes", False)]
)
def test_outputs_equal_the_official_computation(
    tmp_path: Path, dataset: str, use_vae: bool
) -> None:
    torch.manual_seed(0)
    states = make_official_folder(tmp_path / dataset, dataset, use_vae, seed=3)
    small = SMALL[dataset]
    path = import_official(tmp_path / dataset, dataset, use_vae, tmp_path / "x.ckpt", **small)
    module = SemanticSynthesis.load_from_checkpoint(path, map_location="cpu").eval()
    spec = DATASETS[dataset]
    crop = small["crop_size"]
    size = (round(crop / spec.aspect_ratio), crop)
    seg = one_hot_input(dataset, size, seed=1)
    image = torch.rand(1, 3, *size) * 2 - 1

    with torch.no_grad():
        z = None
        if use_vae:
            mu, logvar = module.encoder(image)
            ref_mu, ref_logvar = ref_encoder(states["E"], image, small["encoder_input_size"])
            torch.testing.assert_close(mu, ref_mu, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(logvar, ref_logvar, atol=1e-5, rtol=1e-5)
            z = mu  # deterministic: the mean style of the image
        fake = module.generator(seg, z)
        ref = ref_generator(
            states["G"], seg, z, crop, spec.aspect_ratio, spec.num_upsampling_layers
        )
        assert fake.shape == (1, 3, *size)
        torch.testing.assert_close(fake, ref, atol=1e-5, rtol=0)
        # A saturated tanh would make the comparison vacuous.
        assert ref.std() > 0.05 and (ref.abs() < 0.99).float().mean() > 0.5

        logits = [scale[-1] for scale in module.discriminator(seg, image)]
        ref_logits = ref_discriminator(states["D"], seg, image)
        assert len(logits) == len(ref_logits) == 2
        for ours, theirs in zip(logits, ref_logits):
            torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


# ---- 4. errors ----------------------------------------------------------------------------------
def run_cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    code = cli(argv)
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, f"expected one line, got:\n{err}"
    return code, err


def small_args(dataset: str) -> list[str]:
    return [f"{k}={v}" for k, v in SMALL[dataset].items()]


def test_error_missing_source_and_bad_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code, err = run_cli([f"ckpt={tmp_path / 'nowhere'}", "dataset=ade20k"], capsys)
    assert code == 2 and "nowhere does not exist" in err
    (tmp_path / "empty").mkdir()
    code, err = run_cli([f"ckpt={tmp_path / 'empty'}", "dataset=ade20k"], capsys)
    assert code == 2 and "no latest_net_G.pth" in err
    code, err = run_cli([f"ckpt={tmp_path / 'empty'}", "dataset=ade21k"], capsys)
    assert code == 2 and "dataset=ade21k" in err and "coco_stuff" in err
    with pytest.raises(ValueError, match="dataset=ade21k .*ade20k"):
        import_official(tmp_path / "empty", "ade21k")


def test_error_missing_key_and_wrong_shape(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "ade"
    states = make_official_folder(folder, "ade20k", use_vae=False)
    generator_file = folder / "latest_net_G.pth"
    out = [f"out={tmp_path / 'out.ckpt'}", *small_args("ade20k")]

    broken = dict(states["G"])
    del broken["up_1.norm_0.mlp_gamma.weight"]
    torch.save(broken, generator_file)
    code, err = run_cli([f"ckpt={folder}", "dataset=ade20k", *out], capsys)
    assert code == 2
    assert str(generator_file) in err and "1 missing keys [up_1.norm_0.mlp_gamma.weight]" in err

    broken = dict(states["G"])
    broken["conv_img.weight"] = torch.zeros(3, 16, 3, 3)
    torch.save(broken, generator_file)
    code, err = run_cli([f"ckpt={folder}", "dataset=ade20k", *out], capsys)
    assert code == 2 and "conv_img.weight: file (3, 16, 3, 3) vs ours (3, 8, 3, 3)" in err
    assert "pass ngf=16" in err

    # A VAE generator imported without use_vae=true: the error says which setting to add.
    vae = make_official_folder(tmp_path / "coco", "coco_stuff", use_vae=True)
    torch.save(vae["G"], generator_file)
    code, err = run_cli([f"ckpt={folder}", "dataset=coco_stuff", *out], capsys)
    assert code == 2 and "pass use_vae=true" in err
    assert not (tmp_path / "out.ckpt").exists()


def test_error_opt_txt_and_existing_output(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "ade"
    make_official_folder(folder, "ade20k", use_vae=False)
    # The official save_options format, with a setting the shapes cannot reveal.
    (folder / "opt.txt").write_text(
        "----------------- Options ---------------\n"
        "                 label_nc: 150                           \n"
        "   contain_dontcare_label: True                          \n"
        "    num_upsampling_layers: more                          \t[default: normal]\n"
        "----------------- End -------------------\n"
    )
    out = tmp_path / "out.ckpt"
    argv = [f"ckpt={folder}", "dataset=ade20k", f"out={out}", *small_args("ade20k")]
    code, err = run_cli(argv, capsys)
    assert code == 2 and "num_upsampling_layers=more" in err and "opt.txt" in err
    assert "ignore_opt=true" in err
    assert run_cli([*argv, "ignore_opt=true"], capsys)[0] == 0
    code, err = run_cli([*argv, "ignore_opt=true"], capsys)
    assert code == 2 and "already exists" in err and "force=true" in err
    assert run_cli([*argv, "ignore_opt=true", "force=true"], capsys)[0] == 0


# ---- 5. the command line ------------------------------------------------------------------------
def test_settings_parse_into_the_converters_arguments() -> None:
    kwargs, overrides = parse_cli(
        [
            "ckpt=ckpts/coco",
            "dataset=coco_stuff",
            "out=run",
            "use_vae=true",
            "ngf=32",
            "ndf=16",
            "crop_size=128",
            "encoder_input_size=64",
            "force=true",
            "ignore_opt=true",
            "data.dataset.root=/data/coco",
            "+data.dataset.extra=1",
        ]
    )
    assert kwargs == {
        "source": Path("ckpts/coco"),
        "dataset": "coco_stuff",
        "out": Path("run"),
        "use_vae": True,
        "ngf": 32,
        "ndf": 16,
        "crop_size": 128,
        "encoder_input_size": 64,
        "overwrite": True,
        "check_opt": False,
    }
    assert overrides == ["data.dataset.root=/data/coco", "+data.dataset.extra=1"]
    # The defaults: the paper's network, opt.txt checked, nothing replaced.
    kwargs, overrides = parse_cli(["ckpt=x", "dataset=ade20k"])
    assert kwargs == {
        "source": Path("x"),
        "dataset": "ade20k",
        "out": None,
        "use_vae": False,
        "ngf": 64,
        "ndf": 64,
        "crop_size": None,
        "encoder_input_size": 256,
        "overwrite": False,
        "check_opt": True,
    }
    assert overrides == []


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["dataset=ade20k"], "ckpt= is required"),
        (["ckpt=x"], "dataset= is required"),
        (["ckpt=x", "dataset=ade20k", "datset=coco_stuff"], "unknown setting datset=; valid "),
        (["ckpt=x", "dataset=ade20k", "use_vae=maybe"], "use_vae=maybe must be true or false"),
        (["ckpt=x", "dataset=ade20k", "ngf=wide"], "ngf=wide must be an integer"),
        (["ckpt=x", "dataset=ade20k", "x"], "argument 'x' is not key=value"),
    ],
)
def test_bad_settings_fail_in_one_line(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture
) -> None:
    code, err = run_cli(argv, capsys)
    assert code == 2 and err.startswith("spadelab import-official: error: ") and expected in err
    if "unknown setting" in expected:
        assert ", ".join(SETTINGS) in err  # every valid setting, in one line


def test_old_flag_command_line_fails_with_its_key_value_form(
    capsys: pytest.CaptureFixture,
) -> None:
    old = [
        "ckpts/my run",
        "--dataset",
        "coco_stuff",
        "--out=runs/coco",
        "--use-vae",
        "--crop-size",
        "128",
        "--force",
        "--ignore-opt",
        "data.dataset.root=/data/coco",
    ]
    code, err = run_cli(old, capsys)
    new = (
        "spadelab import-official 'ckpt=ckpts/my run' dataset=coco_stuff out=runs/coco "
        "use_vae=true crop_size=128 force=true ignore_opt=true data.dataset.root=/data/coco"
    )
    assert code == 2 and err.endswith(f"run: {new}")
    # The printed line is a valid command line of the new form, with the same meaning.
    kwargs, overrides = parse_cli(shlex.split(new)[2:])
    assert kwargs["source"] == Path("ckpts/my run") and kwargs["use_vae"] is True
    assert kwargs["crop_size"] == 128 and not kwargs["check_opt"] and kwargs["overwrite"]
    assert overrides == ["data.dataset.root=/data/coco"]
    # Flags that take a value, given without one, still print a command line to edit.
    assert old_form(["x", "--ngf"]) == "spadelab import-official ckpt=x ngf=VALUE"


def test_help_lists_every_setting(capsys: pytest.CaptureFixture) -> None:
    assert cli(["--help"]) == 0
    out = capsys.readouterr().out
    assert out == USAGE
    for setting in SETTINGS:
        assert f"  {setting}=" in out or f" {setting}=" in out, setting

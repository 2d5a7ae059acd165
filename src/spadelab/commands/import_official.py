"""``spadelab import-official``: an official NVlabs/SPADE checkpoint as a spadelab checkpoint.

The official code saves plain state dicts (``latest_net_G.pth``, ``latest_net_D.pth`` and, with
``--use_vae``, ``latest_net_E.pth``) in one folder per experiment. Our networks use the official
module names, so importing is: compose the spadelab config of the same network, build
:class:`~spadelab.module.SemanticSynthesis`, load each file with strict key and shape checks, and
write a Lightning checkpoint that ``SemanticSynthesis.load_from_checkpoint`` reads.

Official options -> spadelab config (``semantic_nc`` is the same on both sides):

========== ================================================ ======================================
dataset    official                                         spadelab
========== ================================================ ======================================
ade20k     label_nc 150 + don't-care, no instances, 256     label_nc 151 (0 = "other"), 256
coco_stuff label_nc 182 + don't-care + instance edge, 256   label_nc 182, don't-care, instances
cityscapes label_nc 35 + instance edge, 512x256, "more"     label_nc 35, instances, fixed 512 / 2
========== ================================================ ======================================

ADE20K channel order: the official ``ADE20KDataset.postprocess`` computes a shifted label map
("other" last) but never stores it, so the official networks were trained on the raw values,
channel 0 = "other". The import therefore pins ``data.dataset.other_last=false``.
"""

from __future__ import annotations

import math
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn as nn
import yaml
from omegaconf import OmegaConf

from spadelab.atomic import atomic_path
from spadelab.checkpoints import output_paths
from spadelab.commands.args import parse_bool, parse_int, split_overrides
from spadelab.config import CONF_DIR, compose_config, override_value

ROLES = ("G", "D", "E")
ROLE_NAMES = {"G": "generator", "D": "discriminator", "E": "encoder"}

# Official parameter name -> spadelab name, applied after stripping DataParallel's "module.".
# Empty on purpose: the nets use the official names and the tests pin them against the
# official key list (tests/fixtures/official_spade_state_dict_keys.tsv). A future rename in
# the nets gets one (regex, replacement) entry here instead of a second naming scheme.
RENAMES: tuple[tuple[str, str], ...] = ()

# Buffers old torch versions did not save; a default value changes no output in eval mode.
OPTIONAL_BUFFERS = ("num_batches_tracked",)


@dataclass(frozen=True)
class OfficialDataset:
    """One official dataset setting: spadelab's label spec and geometry, read from
    ``conf/data/<name>.yaml`` (their one home), and the official option names on top."""

    label_nc: int
    contain_dontcare_label: bool
    use_instance: bool
    crop_size: int
    load_size: int
    aspect_ratio: float
    preprocess_mode: str
    num_upsampling_layers: str
    official_label_nc: int  # the official --label_nc (without don't-care and edge channels)
    official_dontcare: bool  # the official --contain_dontcare_label
    extra_overrides: tuple[str, ...] = ()  # pinned on top of the data config


# name -> (official --label_nc, official --contain_dontcare_label, pinned overrides). ADE20K:
# channel 0 = "other" as the official networks were trained (module docstring).
OFFICIAL_OPTIONS: dict[str, tuple[int, bool, tuple[str, ...]]] = {
    "ade20k": (150, True, ("data.dataset.other_last=false", "data.eval_ignore_index=0")),
    "coco_stuff": (182, True, ()),
    "cityscapes": (35, False, ()),
}


def official_dataset(name: str) -> OfficialDataset:
    path = CONF_DIR / "data" / f"{name}.yaml"
    data = yaml.safe_load(path.read_text())
    official_label_nc, official_dontcare, extra = OFFICIAL_OPTIONS[name]
    return OfficialDataset(
        label_nc=int(data["label_nc"]),
        contain_dontcare_label=bool(data["contain_dontcare_label"]),
        use_instance=bool(data["use_instance"]),
        crop_size=int(data["crop_size"]),
        load_size=int(data["load_size"]),
        aspect_ratio=float(data["aspect_ratio"]),
        preprocess_mode=str(data["preprocess_mode"]),
        num_upsampling_layers=str(data["num_upsampling_layers"]),
        official_label_nc=official_label_nc,
        official_dontcare=official_dontcare,
        extra_overrides=extra,
    )


DATASETS: dict[str, OfficialDataset] = {name: official_dataset(name) for name in OFFICIAL_OPTIONS}

# Official defaults of the options that shape the networks (ngf/ndf 64, z_dim 256, n_layers_D 4,
# num_D 2, SPADE hidden width 128 with 3x3 kernels, spectral norm everywhere but SPADE's convs).
PINNED_OVERRIDES = (
    "scale=paper",
    "norm=syncbatch",
    "modulation=spade",
    "model=spade_decoder",
    "model.generator.width_multiplier=1.0",
    "model.generator.z_dim=256",
    "model.generator.spectral_norm=true",
    "model.discriminator.n_layers=4",
    "model.discriminator.num_D=2",
    "model.discriminator.norm=instance",
    "model.discriminator.spectral_norm=true",
    "modulation.hidden_channels=128",
    "modulation.kernel_size=3",
    "modulation.label_encoding=onehot",
    "norm.eps=1e-5",
    "norm.momentum=0.1",
    # The VGG loss needs local weights to build the module at all, and an imported model is for
    # synthesis; pass loss.lambda_vgg=10 loss.vgg_weights=PATH to fine-tune with it.
    "loss.lambda_vgg=0",
)


def _check_dataset(dataset: str) -> OfficialDataset:
    if dataset not in DATASETS:
        raise ValueError(
            f"dataset={dataset} is not an official SPADE setting; use one of {', '.join(DATASETS)}"
        )
    return DATASETS[dataset]


def official_config(
    dataset: str,
    use_vae: bool,
    *,
    ngf: int = 64,
    ndf: int = 64,
    crop_size: int | None = None,
    encoder_input_size: int = 256,
    overrides: Sequence[str] = (),
    run_dir: Path | None = None,
) -> dict[str, Any]:
    """The plain spadelab config of the official network for ``dataset``.

    ``crop_size`` defaults to the official one (256; Cityscapes 512 at aspect 2). Smaller
    ``ngf`` / ``crop_size`` / ``encoder_input_size`` describe the same architecture at a size
    tests can afford; the official encoder always resizes to 256 (``encoder_input_size``).
    ``overrides`` are Hydra overrides applied last (e.g. ``data.dataset.root=...``).
    """
    spec = _check_dataset(dataset)
    crop = spec.crop_size if crop_size is None else int(crop_size)
    load = max(crop, round(spec.load_size * crop / spec.crop_size))
    composed = [
        # Outside a Hydra app run_dir has no default; checkpoint and log paths derive from it.
        f"run_dir={override_value(str(Path(run_dir or 'imported').expanduser().resolve()), 'out')}",
        f"data={dataset}",
        *PINNED_OVERRIDES,
        f"encoder={'vae' if use_vae else 'none'}",
        "ema.enabled=false",  # the official networks have no moving average to import
        f"scale.ngf={ngf}",
        f"scale.ndf={ndf}",
        f"scale.encoder_input_size={encoder_input_size}",
        # Smaller crops (tests) keep the data config's load/crop ratio.
        f"data.crop_size={crop}",
        f"data.load_size={load}",
        f"model.generator.num_upsampling_layers={spec.num_upsampling_layers}",
        *spec.extra_overrides,
        *overrides,
    ]
    cfg = compose_config("train", composed)
    plain: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    return plain


# ---- finding and reading the official files ---------------------------------------------------
_G_FILE = re.compile(r"^(?P<prefix>.+)_net_G\.pth$")


def find_official_files(source: Path) -> dict[str, Path | None]:
    """{"G": path, "D": path or None, "E": path or None} for a folder or a ``*_net_G.pth``."""
    source = Path(source).expanduser()
    if source.is_dir():
        generator = source / "latest_net_G.pth"
        if not generator.is_file():
            candidates = sorted(source.glob("*_net_G.pth"))
            if not candidates:
                raise FileNotFoundError(
                    f"{source} holds no latest_net_G.pth (nor any *_net_G.pth); pass the "
                    "official checkpoint folder (checkpoints/<name>/) or its *_net_G.pth file"
                )
            if len(candidates) > 1:
                names = ", ".join(p.name for p in candidates)
                raise ValueError(
                    f"{source} holds several generators ({names}) and no latest_net_G.pth; "
                    "pass the one to import as the source"
                )
            generator = candidates[0]
    elif source.is_file():
        if _G_FILE.match(source.name) is None:
            raise ValueError(
                f"{source} is not an official generator file (*_net_G.pth); pass the "
                "checkpoint folder or its latest_net_G.pth"
            )
        generator = source
    else:
        raise FileNotFoundError(
            f"{source} does not exist; pass the official checkpoint folder "
            "(checkpoints/<name>/) or its latest_net_G.pth"
        )
    match = _G_FILE.match(generator.name)
    assert match is not None
    files: dict[str, Path | None] = {"G": generator}
    for role in ("D", "E"):
        sibling = generator.with_name(f"{match['prefix']}_net_{role}.pth")
        files[role] = sibling if sibling.is_file() else None
    return files


def _load_error_detail(error: Exception) -> str:
    """The cause inside torch's long weights-only message, else the message's first line."""
    text = str(error)
    match = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n\n|$)", text, re.DOTALL)
    detail = match[1] if match else (text.strip().splitlines() or [""])[0]
    return " ".join(detail.split())[:200]


def load_official_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from an official file: ``weights_only`` load, ``module.`` stripped, renamed.

    Dropping the file's ``_metadata`` is safe: spectral norm treats a (weight_orig, weight_u,
    weight_v) triple without version as current, and batch norm only uses the version to add
    a missing ``num_batches_tracked``.
    """
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - re-raised naming the file
        raise ValueError(
            f"{path} cannot be read with torch.load(weights_only=True) "
            f"({type(error).__name__}: {_load_error_detail(error)}); pass an official "
            "latest_net_*.pth, or re-save the network with torch.save(net.state_dict(), path)"
        ) from error
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]  # re-saves that wrap the state dict
    if not isinstance(loaded, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in loaded.values()
    ):
        raise ValueError(
            f"{path} holds a {type(loaded).__name__}, not a state dict of tensors; pass the "
            "official latest_net_*.pth files"
        )
    state: dict[str, torch.Tensor] = {}
    for key, value in loaded.items():
        name = str(key)
        if name.startswith("module."):  # saved from a DataParallel wrapper
            name = name[len("module.") :]
        for pattern, replacement in RENAMES:
            name = re.sub(pattern, replacement, name)
        state[name] = value
    return state


def _short_list(items: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{f', ... {len(items) - limit} more' if len(items) > limit else ''}]"


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(str(s) for s in t.shape) + ")"


def _mismatch_hint(
    role: str, ours: Mapping[str, torch.Tensor], theirs: Mapping[str, torch.Tensor]
) -> str:
    """A likely cause of a mismatch, read off the shapes that tell the options apart."""
    hints = []
    if role == "D":
        first = "discriminator_0.model0.0.weight"
        if first in ours and first in theirs and theirs[first].shape[0] != ours[first].shape[0]:
            hints.append(
                f"its first layer has {theirs[first].shape[0]} channels: pass ndf={theirs[first].shape[0]}"
            )
    if role != "G":
        return "; ".join(hints)
    fc_ours, fc_theirs = ours.get("fc.weight"), theirs.get("fc.weight")
    if fc_ours is not None and fc_theirs is not None:
        if fc_theirs.dim() != fc_ours.dim():
            vae = fc_theirs.dim() == 2
            hints.append(
                f"the file's generator was trained {'with' if vae else 'without'} the VAE: "
                f"{'pass' if vae else 'drop'} use_vae=true"
            )
        elif fc_theirs.dim() == 4 and fc_theirs.shape[1] != fc_ours.shape[1]:
            hints.append(
                f"the file has {fc_theirs.shape[1]} label channels, this dataset= "
                f"{fc_ours.shape[1]}: choose the matching dataset="
            )
    img_ours, img_theirs = ours.get("conv_img.weight"), theirs.get("conv_img.weight")
    if img_ours is not None and img_theirs is not None and img_theirs.shape != img_ours.shape:
        hints.append(
            f"its last layer has {img_theirs.shape[1]} channels: pass ngf={img_theirs.shape[1]}"
        )
    elif (
        fc_ours is not None
        and fc_theirs is not None
        and fc_theirs.dim() == fc_ours.dim() == 2
        and fc_theirs.shape != fc_ours.shape
    ):
        hints.append(
            "its first layer starts from another latent size: check crop_size= (and "
            "dataset=, whose aspect ratio sets the latent shape)"
        )
    return "; ".join(hints)


def check_state_dict(
    net: nn.Module, state: dict[str, torch.Tensor], path: Path, role: str, setting: str
) -> None:
    """Raise one readable error unless ``state`` has exactly ``net``'s keys and shapes.

    Missing ``num_batches_tracked`` buffers are filled in (zeros) rather than refused.
    """
    ours = net.state_dict()
    for key, value in ours.items():
        if key not in state and key.rsplit(".", 1)[-1] in OPTIONAL_BUFFERS:
            state[key] = torch.zeros_like(value)
    missing = [k for k in ours if k not in state]
    unexpected = [k for k in state if k not in ours]
    shapes = [
        f"{k}: file {_shape(state[k])} vs ours {_shape(v)}"
        for k, v in ours.items()
        if k in state and state[k].shape != v.shape
    ]
    if not (missing or unexpected or shapes):
        return
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys {_short_list(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys {_short_list(unexpected)}")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatches {_short_list(shapes, 3)}")
    hint = _mismatch_hint(role, ours, state)
    raise ValueError(
        f"{path} does not match the spadelab {ROLE_NAMES[role]} for {setting}: "
        f"{'; '.join(problems)}; "
        f"{hint or 'check dataset=, use_vae=, ngf=, ndf=, crop_size= and encoder_input_size= against the run that saved it'}"
    )


# ---- the official opt.txt -----------------------------------------------------------------------
_OPT_LINE = re.compile(r"^\s*(?P<key>\w+):\s*(?P<value>\S+)")


def read_official_options(path: Path) -> dict[str, str]:
    """``opt.txt`` as written by the official ``save_options``: ``key: value  [default: x]``."""
    options = {}
    for line in path.read_text(errors="replace").splitlines():
        match = _OPT_LINE.match(line)
        if match:
            options[match["key"]] = match["value"]
    return options


def _same(expected: object, text: str) -> bool:
    try:
        if isinstance(expected, bool):
            return text.lower() == str(expected).lower()
        if isinstance(expected, int):
            return int(text) == expected
        if isinstance(expected, float):
            return math.isclose(float(text), expected)
    except ValueError:
        return False
    return text == str(expected)


def check_official_options(
    opt_file: Path, dataset: str, use_vae: bool, ngf: int, crop: int
) -> None:
    """Fail when the run's own ``opt.txt`` describes a network other than the one we build.

    Most option mismatches also change a shape and fail the strict load; these do not always
    (``num_upsampling_layers``, ``aspect_ratio`` without the VAE), so the file is checked first.
    """
    spec = DATASETS[dataset]
    expected: dict[str, tuple[object, str]] = {
        "label_nc": (spec.official_label_nc, "dataset="),
        "contain_dontcare_label": (spec.official_dontcare, "dataset="),
        "no_instance": (not spec.use_instance, "dataset="),
        "use_vae": (use_vae, "use_vae="),
        "ngf": (ngf, "ngf="),
        "crop_size": (crop, "crop_size="),
        "aspect_ratio": (spec.aspect_ratio, "dataset="),
        "num_upsampling_layers": (spec.num_upsampling_layers, "dataset="),
        "z_dim": (256, "(spadelab imports z_dim 256 only)"),
    }
    options = read_official_options(opt_file)
    wrong = [
        f"{key}={options[key]} (this import: {value}; {fix})"
        for key, (value, fix) in expected.items()
        if key in options and not _same(value, options[key])
    ]
    if wrong:
        raise ValueError(
            f"{opt_file} describes another network: {', '.join(wrong)}; fix those options, "
            "or pass ignore_opt=true if that opt.txt does not belong to these weights"
        )


# ---- the import ---------------------------------------------------------------------------------
def default_out(files: Mapping[str, Path | None]) -> Path:
    generator = files["G"]
    assert generator is not None
    return Path("runs") / "imported" / generator.resolve().parent.name


@dataclass(frozen=True)
class ImportResult:
    checkpoint: Path
    loaded: tuple[str, ...]  # roles ("G", "D", "E") whose weights came from a file
    random: tuple[str, ...]  # roles built without a file: they keep their random init


def import_official(source: Path, dataset: str, *args: Any, **kwargs: Any) -> Path:
    """Convert an official SPADE checkpoint; returns the written Lightning checkpoint.

    Same arguments as :func:`convert_official`, which also tells which networks were loaded.
    """
    return convert_official(source, dataset, *args, **kwargs).checkpoint


def convert_official(
    source: Path,
    dataset: str,
    use_vae: bool = False,
    out: Path | None = None,
    *,
    ngf: int = 64,
    ndf: int = 64,
    crop_size: int | None = None,
    encoder_input_size: int = 256,
    overrides: Sequence[str] = (),
    overwrite: bool = False,
    check_opt: bool = True,
) -> ImportResult:
    """Convert an official SPADE checkpoint into a spadelab one.

    ``source``: the official checkpoint folder (``latest_net_G.pth`` and, when present,
    ``latest_net_D.pth`` / ``latest_net_E.pth``) or a ``*_net_G.pth`` file. ``out``: a ``.ckpt``
    file, or a run folder that receives ``checkpoints/last.ckpt`` and ``config.yaml``
    (default ``runs/imported/<source folder name>``). Networks without a file keep their
    random initialization; the result (and the checkpoint's ``spadelab_import["loaded"]``) says
    which were loaded. ``ngf``, ``ndf``, ``crop_size`` and ``encoder_input_size`` are the
    official options of the run (defaults: the paper's); ``overrides`` are extra Hydra
    overrides for the stored config.
    """
    from spadelab.module import SemanticSynthesis  # Lightning and the nets: only when needed

    spec = _check_dataset(dataset)
    files = find_official_files(Path(source))
    crop = spec.crop_size if crop_size is None else int(crop_size)
    ckpt_path, run_dir = output_paths(default_out(files) if out is None else Path(out))
    if ckpt_path.exists() and not overwrite:
        raise FileExistsError(
            f"{ckpt_path} already exists; pass force=true to replace it or another out="
        )
    generator_file = files["G"]
    assert generator_file is not None
    opt_file = generator_file.parent / "opt.txt"
    if check_opt and opt_file.is_file():
        check_official_options(opt_file, dataset, use_vae, ngf, crop)

    cfg = official_config(
        dataset,
        use_vae,
        ngf=ngf,
        ndf=ndf,
        crop_size=crop_size,
        encoder_input_size=encoder_input_size,
        overrides=overrides,
        run_dir=run_dir,
    )
    module = SemanticSynthesis(cfg)
    nets: dict[str, nn.Module | None] = {
        "G": module.generator,
        "D": module.discriminator,
        "E": module.encoder,
    }
    setting = f"dataset={dataset} ngf={ngf} ndf={ndf} crop_size={crop}"
    if use_vae:
        setting += f" use_vae=true encoder_input_size={encoder_input_size}"
    loaded = []
    for role in ROLES:
        path, net = files[role], nets[role]
        if path is None or net is None:
            continue  # E without use_vae: the generator check already enforces the VAE choice
        state = load_official_state_dict(path)
        check_state_dict(net, state, path, role, setting)
        net.load_state_dict(state, strict=True)
        loaded.append(role)
        del state

    checkpoint = {
        "state_dict": module.state_dict(),
        "hyper_parameters": {"cfg": cfg},
        "pytorch-lightning_version": pl.__version__,
        "epoch": 0,
        "global_step": 0,
        "spadelab_import": {
            "source": str(Path(source).expanduser().resolve()),
            "dataset": dataset,
            "use_vae": bool(use_vae),
            "files": {role: str(p.resolve()) if p else None for role, p in files.items()},
            "loaded": loaded,
        },
    }
    with atomic_path(ckpt_path) as tmp:
        torch.save(checkpoint, tmp)
    if ckpt_path.parent.name == "checkpoints" and ckpt_path.parent.parent == run_dir:
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    built = [role for role in ROLES if nets[role] is not None]
    return ImportResult(
        ckpt_path, tuple(loaded), tuple(role for role in built if role not in loaded)
    )


# ---- command line -------------------------------------------------------------------------------
USAGE = """\
usage: spadelab import-official ckpt=PATH dataset=ade20k|coco_stuff|cityscapes [SETTING=VALUE ...]
                                [data.dataset.root=PATH ...]

Convert an official NVlabs/SPADE checkpoint (latest_net_G.pth, and _D/_E when present) into a
spadelab Lightning checkpoint.

  ckpt=PATH               the official checkpoint folder (checkpoints/<name>/) or its *_net_G.pth
  dataset=NAME            the official setting: ade20k, coco_stuff or cityscapes
  out=PATH                a .ckpt file or a run folder (default: runs/imported/<folder name>)
  use_vae=true            the run used the official --use_vae
  ngf=64 ndf=64           the official --ngf / --ndf
  crop_size=N             the official --crop_size (default: the dataset's)
  encoder_input_size=256  the size the VAE encoder resizes images to (official: 256)
  force=true              replace an existing checkpoint
  ignore_opt=true         do not check the folder's opt.txt against these settings
  a.b=VALUE               dotted keys are Hydra overrides of the stored config
"""

SETTINGS = (
    "ckpt",
    "dataset",
    "out",
    "use_vae",
    "ngf",
    "ndf",
    "crop_size",
    "encoder_input_size",
    "force",
    "ignore_opt",
)

# The argparse flags of earlier versions -> their key=value setting; a flag mapped to "" took no
# value (it meant "=true"). Only to print the new form of an old command line (see old_form).
_OLD_FLAGS = {
    "--dataset": "dataset",
    "--out": "out",
    "--use-vae": "",
    "--ngf": "ngf",
    "--ndf": "ndf",
    "--crop-size": "crop_size",
    "--encoder-input-size": "encoder_input_size",
    "--force": "",
    "--ignore-opt": "",
}


def old_form(argv: Sequence[str]) -> str:
    """The key=value command line that does what an old ``--flag`` command line did."""
    words: list[str] = []
    items = list(argv)
    while items:
        item = items.pop(0)
        flag, sep, value = item.partition("=")
        if flag in _OLD_FLAGS:
            key = _OLD_FLAGS[flag] or flag[2:].replace("-", "_")
            if not _OLD_FLAGS[flag]:
                value = "true"
            elif not sep:
                value = items.pop(0) if items else "VALUE"
            words.append(f"{key}={value}")
        elif item.startswith("-"):
            words.append(item)  # no such flag existed either; left for the user to see
        elif "=" in item:
            words.append(item)  # already key=value (a Hydra override)
        else:
            words.append(f"ckpt={item}")  # the positional source
    return " ".join(["spadelab import-official", *(shlex.quote(w) for w in words)])


def parse_cli(argv: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """``convert_official``'s keyword arguments and the Hydra overrides of a command line."""
    if any(item.startswith("--") for item in argv):
        raise ValueError(
            f"the --option form is gone, settings are key=value; run: {old_form(argv)}"
        )
    values, overrides = split_overrides(argv, "import-official", SETTINGS, dotted_only=True)
    for required in ("ckpt", "dataset"):
        if not values.get(required):
            raise ValueError(
                f"{required}= is required; e.g. spadelab import-official "
                "ckpt=checkpoints/ade20k_pretrained dataset=ade20k"
            )
    kwargs: dict[str, Any] = {
        "source": Path(values["ckpt"]),
        "dataset": values["dataset"],
        "use_vae": parse_bool(values.get("use_vae", "false"), "use_vae"),
        "out": Path(values["out"]) if values.get("out") else None,
        "ngf": parse_int(values.get("ngf", "64"), "ngf"),
        "ndf": parse_int(values.get("ndf", "64"), "ndf"),
        "crop_size": parse_int(values["crop_size"], "crop_size")
        if "crop_size" in values
        else None,
        "encoder_input_size": parse_int(
            values.get("encoder_input_size", "256"), "encoder_input_size"
        ),
        "overwrite": parse_bool(values.get("force", "false"), "force"),
        "check_opt": not parse_bool(values.get("ignore_opt", "false"), "ignore_opt"),
    }
    return kwargs, overrides


def cli(argv: list[str]) -> int:
    from spadelab.runtime import command_error

    if any(item in ("-h", "--help", "help") for item in argv):
        print(USAGE, end="")
        return 0
    try:
        kwargs, overrides = parse_cli(argv)
        result = convert_official(overrides=overrides, **kwargs)
    except Exception as error:  # noqa: BLE001 - the one error path re-raises bugs
        return command_error("import-official", error)
    loaded = ", ".join(ROLE_NAMES[r] for r in result.loaded)
    note = (
        f"; no file, random init: {', '.join(ROLE_NAMES[r] for r in result.random)}"
        if result.random
        else ""
    )
    print(f"wrote {result.checkpoint} (loaded {loaded}{note})")
    return 0


def main() -> int:
    return cli(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())

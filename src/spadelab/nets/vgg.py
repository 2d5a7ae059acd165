"""VGG19 features for the perceptual loss, from a local torchvision state dict."""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch
import torch.nn as nn
from torchvision.models import vgg19

# relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 as slices of torchvision's vgg19().features.
SLICE_ENDS = (2, 7, 12, 21, 30)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The state dict at ``path``, memory-mapped when it is in torch's zip format.

    Files in the legacy (pre-1.6) format are not zip archives, cannot be mapped and are read whole.
    """
    return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))


class VGG19Features(nn.Module):
    """Frozen VGG19 returning the five relu*_1 activations.

    ``weights_path`` is a torchvision ``vgg19`` ImageNet state dict (e.g. vgg19-dcbb9e9d.pth)
    on local disk; nothing is downloaded. ``normalize_input=False`` feeds [-1, 1] images as the
    official SPADE code does; True applies ImageNet normalization first.
    """

    def __init__(self, weights_path: str | None, normalize_input: bool = False) -> None:
        super().__init__()
        if not weights_path:
            raise ValueError(
                "the VGG perceptual loss is on (loss.lambda_vgg > 0) but loss.vgg_weights is "
                "not set; point it at a torchvision vgg19 ImageNet state dict "
                "(vgg19-dcbb9e9d.pth) or set loss.lambda_vgg=0"
            )
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"loss.vgg_weights={weights_path} does not exist; download torchvision's "
                "vgg19-dcbb9e9d.pth on a machine with internet and copy it there"
            )
        # Only the conv features are kept, so only they are ever materialised: the network is
        # built on the meta device (its 124M-parameter classifier costs nothing) and the weights
        # file is memory-mapped where its format allows, so the classifier's 0.5 GB is never read.
        with torch.device("meta"):
            features = vgg19(weights=None).features
        try:
            state = _load_state_dict(path)
            features.load_state_dict(
                {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")},
                assign=True,
            )
        except Exception as error:  # noqa: BLE001 - re-raised with the setting's name
            raise ValueError(
                f"loss.vgg_weights={weights_path} is not a torchvision vgg19 state dict: {error}"
            ) from error
        starts = (0,) + SLICE_ENDS[:-1]
        self.slices = nn.ModuleList(
            nn.Sequential(*features[start:end]) for start, end in zip(starts, SLICE_ENDS)
        )
        self.normalize_input = normalize_input
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG19Features:
        # Always eval: a perceptual network must not change with the GAN's train/eval switch.
        return super().train(False)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = (image + 1) / 2 if self.normalize_input else image
        if self.normalize_input:
            x = (x - self.mean) / self.std
        features = []
        for block in self.slices:
            x = block(x)
            features.append(x)
        return features

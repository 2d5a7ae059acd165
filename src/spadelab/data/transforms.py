"""Geometric transforms applied identically to image, label map and instance map.

``preprocess_mode`` mirrors the official SPADE options so paper settings carry over:
``resize_and_crop`` (resize to load_size², crop crop_size²), ``scale_width_and_crop``,
``scale_shortside_and_crop``, ``fixed`` (resize to crop_size x crop_size/aspect_ratio, the
Cityscapes 512x256 setting) and ``none`` (keep the size, round down to a multiple of 32).
Labels and instances are always resized with nearest neighbour: a bilinear label is not a label.
Validation is deterministic (centre crop, no flip).
"""

from __future__ import annotations

from enum import Enum

import numpy as np
import torch
from PIL import Image


class PreprocessMode(str, Enum):
    resize_and_crop = "resize_and_crop"
    scale_width_and_crop = "scale_width_and_crop"
    scale_shortside_and_crop = "scale_shortside_and_crop"
    fixed = "fixed"
    none = "none"


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float (3, H, W) in [-1, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32)
    return torch.from_numpy(array).permute(2, 0, 1).div_(127.5).sub_(1.0)


def tensor_to_uint8(image: torch.Tensor) -> np.ndarray:
    """Float (3, H, W) in [-1, 1] -> uint8 (H, W, 3)."""
    array = ((image.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte()
    return array.permute(1, 2, 0).cpu().numpy()


def map_to_tensor(image: Image.Image) -> torch.Tensor:
    """Integer map (mode L, I, I;16 or P) -> int64 (1, H, W)."""
    return torch.from_numpy(np.asarray(image).astype(np.int64)).unsqueeze(0)


class PairedTransform:
    def __init__(
        self,
        preprocess_mode: str = "resize_and_crop",
        load_size: int | None = None,
        crop_size: int = 256,
        aspect_ratio: float = 1.0,
        flip: bool = True,
    ) -> None:
        try:
            self.mode = PreprocessMode(preprocess_mode)
        except ValueError:
            valid = ", ".join(m.value for m in PreprocessMode)
            raise ValueError(
                f"data.preprocess_mode={preprocess_mode!r} is unknown; choose one of: {valid}"
            ) from None
        if crop_size < 1:
            raise ValueError(f"data.crop_size={crop_size} must be >= 1")
        if aspect_ratio <= 0:
            raise ValueError(f"data.aspect_ratio={aspect_ratio} must be > 0")
        self.crop_size = crop_size
        self.load_size = load_size if load_size is not None else crop_size
        if self.load_size < crop_size and self.mode is not PreprocessMode.fixed:
            raise ValueError(
                f"data.load_size={self.load_size} is smaller than data.crop_size={crop_size}"
            )
        self.aspect_ratio = aspect_ratio
        self.flip = flip

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the images a generator trained on this data produces: the output
        for a ``crop_size`` square input (``preprocess_mode=none`` keeps each image's size)."""
        width, height = self.output_size(self.crop_size, self.crop_size)
        return height, width

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) after the transform, for an input of the given size."""
        if self.mode is PreprocessMode.fixed:
            return self.crop_size, round(self.crop_size / self.aspect_ratio)
        if self.mode is PreprocessMode.none:
            return max(32, width // 32 * 32), max(32, height // 32 * 32)
        return self.crop_size, self.crop_size

    def _resized_size(self, width: int, height: int) -> tuple[int, int]:
        mode, load = self.mode, self.load_size
        if mode is PreprocessMode.resize_and_crop:
            return load, load
        if mode is PreprocessMode.scale_width_and_crop:
            return load, max(self.crop_size, round(height * load / width))
        if mode is PreprocessMode.scale_shortside_and_crop:
            scale = load / min(width, height)
            return max(self.crop_size, round(width * scale)), max(
                self.crop_size, round(height * scale)
            )
        return self.output_size(width, height)

    def __call__(
        self,
        image: Image.Image,
        label: Image.Image,
        instance: Image.Image | None = None,
        train: bool = True,
        index: int | None = None,
    ) -> dict[str, torch.Tensor]:
        if image.size != label.size:
            raise ValueError(
                f"image size {image.size} differs from label size {label.size}"
                + (f" (sample {index})" if index is not None else "")
            )
        size = self._resized_size(*image.size)
        maps = {"image": image.convert("RGB"), "label": label}
        if instance is not None:
            maps["instance"] = instance
        resized = {
            key: value.resize(
                size, Image.Resampling.BICUBIC if key == "image" else Image.Resampling.NEAREST
            )
            if value.size != size
            else value
            for key, value in maps.items()
        }
        out_w, out_h = self.output_size(*image.size)
        if train:
            x = int(torch.randint(0, size[0] - out_w + 1, ()).item())
            y = int(torch.randint(0, size[1] - out_h + 1, ()).item())
            flip = self.flip and bool(torch.rand(()) < 0.5)
        else:
            x, y, flip = (size[0] - out_w) // 2, (size[1] - out_h) // 2, False
        box = (x, y, x + out_w, y + out_h)
        sample: dict[str, torch.Tensor] = {}
        for key, value in resized.items():
            if value.size != (out_w, out_h):
                value = value.crop(box)
            if flip:
                value = value.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            sample[key] = image_to_tensor(value) if key == "image" else map_to_tensor(value)
        if "instance" not in sample:
            sample["instance"] = torch.zeros_like(sample["label"])
        return sample

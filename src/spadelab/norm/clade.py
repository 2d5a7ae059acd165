"""Class-adaptive normalization (CLADE; Tan et al., "Efficient Semantic Image Synthesis via
Class-Adaptive Normalization", TPAMI 2021) and its intra-class positional variant CLADE-ICPE.

SPADE predicts gamma and beta per pixel with convolutions over the label map. CLADE looks them
up per class: ``out = param_free_norm(x) * gamma[c] + beta[c]`` where ``c`` is the class of the
pixel, so a layer costs ``2 * label_nc * C`` parameters and no convolution. With
``positional_encoding=true`` (CLADE-ICPE) the looked-up values are modulated by the intra-class
positional map: for each connected region of one class, each pixel's offset from the region's
centroid, divided per axis by the region's largest offset (values in [-1, 1]). Two 1x1 convs
turn that 2-channel map into ``gamma * (1 + conv_w(map))`` and ``beta * (1 + conv_b(map))``.
Parameter names and initialization follow the official code (``ClassAffine``): gamma uniform
in [0, 1), beta zero, the positional convs zero.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn as nn
import torch.nn.functional as F

from spadelab.norm.modulation import LabelEncoding, ParamFreeNorm


def _component_ids(classes: torch.Tensor) -> torch.Tensor:
    """Connected components (4-neighbourhood) of equal class: one id per region, (N, H, W).

    Every pixel starts with its own id and repeatedly takes the largest id of a same-class
    neighbour until nothing changes; each region then carries the id of one of its pixels.
    """
    n, h, w = classes.shape
    ids = torch.arange(1, h * w + 1, device=classes.device).view(1, h, w).expand(n, h, w)
    ids = ids.clone()
    same_down = classes[:, 1:, :] == classes[:, :-1, :]
    same_right = classes[:, :, 1:] == classes[:, :, :-1]
    while True:
        new = ids.clone()
        new[:, 1:, :] = torch.where(
            same_down, torch.maximum(new[:, 1:, :], ids[:, :-1, :]), new[:, 1:, :]
        )
        new[:, :-1, :] = torch.where(
            same_down, torch.maximum(new[:, :-1, :], ids[:, 1:, :]), new[:, :-1, :]
        )
        new[:, :, 1:] = torch.where(
            same_right, torch.maximum(new[:, :, 1:], ids[:, :, :-1]), new[:, :, 1:]
        )
        new[:, :, :-1] = torch.where(
            same_right, torch.maximum(new[:, :, :-1], ids[:, :, 1:]), new[:, :, :-1]
        )
        if torch.equal(new, ids):
            return ids
        ids = new


def intra_class_positions(classes: torch.Tensor) -> torch.Tensor:
    """The CLADE-ICPE map (N, 2, H, W): per-axis offset from the region centroid, in [-1, 1].

    Matches the official ``cal_connectedComponents`` (which precomputes it offline), except
    that every class gets a map: the official script skips label 0 (ADE20K's "other").
    """
    n, h, w = classes.shape
    ids = _component_ids(classes).view(n, -1)
    # Dense region index per sample, so per-region sums fit in (N, H*W) buffers.
    _, region = torch.unique(ids, return_inverse=True)
    rows = torch.arange(h, device=classes.device, dtype=torch.float32)
    cols = torch.arange(w, device=classes.device, dtype=torch.float32)
    coords = torch.stack(
        [rows.view(h, 1).expand(h, w).reshape(-1), cols.view(1, w).expand(h, w).reshape(-1)]
    )  # (2, H*W)
    size = int(region.max()) + 1
    out = torch.empty(n, 2, h * w, device=classes.device)
    for axis in range(2):
        values = coords[axis].expand(n, -1)
        total = torch.zeros(n, size, device=classes.device).scatter_add_(1, region, values)
        count = torch.zeros(n, size, device=classes.device).scatter_add_(
            1, region, torch.ones_like(values)
        )
        offset = values - (total / count.clamp_min(1)).gather(1, region)
        largest = torch.zeros(n, size, device=classes.device).scatter_reduce_(
            1, region, offset.abs(), reduce="amax"
        )
        out[:, axis] = offset / (largest.gather(1, region) + 1e-5)
    return out.view(n, 2, h, w)


# One generator forward calls every norm layer with the same label map: the positional map is
# computed once per label map, not once per layer. A weak reference cannot outlive its tensor,
# so a freed map is never mistaken for a new one at the same address.
_positions_cache: dict[str, object] = {}


def _cached_positions(label_map: torch.Tensor) -> torch.Tensor:
    ref = _positions_cache.get("ref")
    if (
        ref is not None
        and ref() is label_map
        and _positions_cache.get("version") == label_map._version
    ):
        return _positions_cache["positions"]  # type: ignore[return-value]
    positions = intra_class_positions(label_map.argmax(dim=1))
    _positions_cache.update(
        ref=weakref.ref(label_map), version=label_map._version, positions=positions
    )
    return positions


class CLADE(nn.Module):
    """``param_free_norm(x) * gamma[class] + beta[class]`` (+ ICPE), a drop-in for SPADE.

    The class of a pixel is the argmax of the label map, so the instance-edge channel (the last
    one, never the maximum of a valid one-hot map) does not enter: the official code instead
    concatenates a 1x1 conv of the edge map as an extra activation channel, which would change
    the width of every block; see ``notes`` in conf/modulation/clade.yaml.
    """

    def __init__(
        self,
        num_features: int,
        label_nc: int,
        param_free_norm: ParamFreeNorm,
        label_encoding: str = "onehot",
        positional_encoding: bool = False,
    ) -> None:
        super().__init__()
        if LabelEncoding(label_encoding) is not LabelEncoding.onehot:
            raise ValueError(
                f"modulation=clade needs label_encoding=onehot, got {label_encoding}: its "
                "gamma/beta are looked up per class; use modulation=spade for the index variant"
            )
        self.num_features = num_features
        self.label_nc = label_nc
        self.param_free_norm = param_free_norm(num_features)
        self.weight = nn.Parameter(torch.empty(label_nc, num_features).uniform_())
        self.bias = nn.Parameter(torch.zeros(label_nc, num_features))
        self.positional_encoding = positional_encoding
        if positional_encoding:
            self.dist_conv_w = nn.Conv2d(2, 1, 1)
            self.dist_conv_b = nn.Conv2d(2, 1, 1)
            for conv in (self.dist_conv_w, self.dist_conv_b):
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor, label_map: torch.Tensor) -> torch.Tensor:
        assert x.shape[1] == self.num_features, (
            f"CLADE expects {self.num_features} channels, got {x.shape[1]}"
        )
        assert label_map.shape[1] == self.label_nc, (
            f"CLADE expects a {self.label_nc}-channel label map, got {label_map.shape[1]}"
        )
        normalized = self.param_free_norm(x)
        size = x.shape[-2:]
        classes = label_map.argmax(dim=1, keepdim=True).float()
        classes = F.interpolate(classes, size=size, mode="nearest")[:, 0].long()
        gamma = F.embedding(classes, self.weight).permute(0, 3, 1, 2)
        beta = F.embedding(classes, self.bias).permute(0, 3, 1, 2)
        if self.positional_encoding:
            positions = F.interpolate(_cached_positions(label_map), size=size, mode="nearest")
            gamma = gamma * (1 + self.dist_conv_w(positions))
            beta = beta * (1 + self.dist_conv_b(positions))
        return normalized * gamma + beta

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from spadelab.metrics.judge import (
    JudgeNet,
    JudgeSegmenter,
    config_hash,
    load_or_train_judge,
    train_judge,
)
from spadelab.metrics.segmentation import predict_labels

PALETTE = torch.tensor(
    [[-0.8, -0.8, 0.8], [0.8, -0.6, -0.6], [-0.5, 0.8, -0.5], [0.7, 0.7, 0.7]]
)  # class -> RGB in [-1, 1]


def colour_batches(num: int, batch: int, seed: int, size: int = 32) -> list[dict[str, Any]]:
    """Blocky random label maps; the image colour encodes the class (plus noise)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(num):
        coarse = torch.randint(0, len(PALETTE), (batch, 1, size // 8, size // 8), generator=g)
        label = F.interpolate(coarse.float(), size=(size, size), mode="nearest").long()
        image = PALETTE[label[:, 0]].permute(0, 3, 1, 2)
        image = (image + 0.15 * torch.randn(image.shape, generator=g)).clamp(-1, 1)
        out.append(
            {
                "label": label,
                "instance": torch.zeros_like(label),
                "image": image,
                "path": [f"img{i}.png" for i in range(batch)],
            }
        )
    return out


def test_config_hash_is_stable() -> None:
    a = config_hash({"name": "synthetic", "size": [64, 64], "nested": {"x": 1, "y": 2.5}})
    b = config_hash({"nested": {"y": 2.5, "x": 1}, "size": (64, 64), "name": "synthetic"})
    assert a == b and len(a) == 16
    assert a != config_hash({"name": "synthetic", "size": [64, 32], "nested": {"x": 1, "y": 2.5}})
    assert config_hash({"p": Path("/a")}) == config_hash({"p": "/a"})


def test_judge_net_shapes() -> None:
    net = JudgeNet(5)
    assert 300_000 <= sum(p.numel() for p in net.parameters()) <= 1_000_000
    x = torch.rand(2, 3, 30, 44) * 2 - 1  # odd sizes work
    assert net(x).shape == (2, 5, 30, 44)
    assert net.features(x).shape == (2, net.feature_dim) == (2, 128)


def test_judge_learns_colour_classes() -> None:
    train = colour_batches(8, 8, seed=0)
    val = colour_batches(2, 8, seed=1)
    model, report = train_judge(train, val, num_classes=4, steps=40, lr=3e-3, seed=0)
    assert report["val_miou"] > 95.0, report
    assert report["val_accuracy"] > 97.0
    assert report["num_val_images"] == 16
    seg = JudgeSegmenter(model)
    pred = predict_labels(seg, val[0]["image"], (32, 32))
    assert (pred == val[0]["label"][:, 0]).float().mean() > 0.97
    assert seg.features(val[0]["image"]).shape == (8, 128)


def test_judge_respects_ignore_and_is_deterministic() -> None:
    train = colour_batches(2, 4, seed=0, size=16)
    for b in train:  # class 3 becomes "ignore"
        b["label"] = torch.where(b["label"] == 3, 255, b["label"])
    kwargs: dict[str, Any] = {"num_classes": 3, "ignore_index": 255, "steps": 3, "seed": 7}
    m1, r1 = train_judge(train, train, **kwargs)
    m2, r2 = train_judge(train, train, **kwargs)
    for (k, v1), v2 in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(v1, v2), k
    assert r1 == r2
    m3, _ = train_judge(train, train, **(kwargs | {"seed": 8}))
    assert not torch.equal(m1.head.weight, m3.head.weight)


def test_load_or_train_judge_caches(tmp_path: Path) -> None:
    train = colour_batches(2, 4, seed=0, size=16)
    val = colour_batches(1, 4, seed=1, size=16)
    key = config_hash({"dataset": "colour", "size": 16})
    kwargs: dict[str, Any] = {"num_classes": 4, "steps": 3, "seed": 0}
    model, report = load_or_train_judge(tmp_path, key, train, val, **kwargs)
    weights, sidecar = tmp_path / f"judge-{key}.pt", tmp_path / f"judge-{key}.json"
    assert weights.is_file() and sidecar.is_file()
    meta = json.loads(sidecar.read_text())
    assert meta["config"]["num_classes"] == 4 and meta["metrics"]["val_miou"] == report["val_miou"]
    # cache hit: no loaders needed, identical weights and report
    cached, cached_report = load_or_train_judge(tmp_path, key, None, None, **kwargs)
    assert cached_report == report
    x = val[0]["image"]
    torch.testing.assert_close(JudgeSegmenter(cached)(x), JudgeSegmenter(model)(x))
    with pytest.raises(ValueError, match="was trained with"):
        load_or_train_judge(tmp_path, key, None, None, **(kwargs | {"steps": 4}))
    with pytest.raises(ValueError, match="no cached judge"):
        load_or_train_judge(tmp_path, "missing", None, None, **kwargs)

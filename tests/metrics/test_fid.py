from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torch_fidelity
from PIL import Image
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from spadelab.metrics.fid import (
    INCEPTION_WEIGHTS_ENV,
    InceptionFeatures,
    compute_fid_kid,
    fd_from_features,
    fd_judge,
    frechet_distance,
    kid,
)

TINY = "spadelab-test-tiny"


class TinyExtractor(FeatureExtractorBase):
    """Fixed random projection of 4x4-pooled pixels: 8-d features, no weights to download."""

    def __init__(self, name: str, features_list: list[str], **kwargs: object) -> None:
        super().__init__(name, features_list)
        g = torch.Generator().manual_seed(0)
        self.register_buffer("proj", torch.randn(48, 8, generator=g) / 48**0.5)

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return ("feat",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return "feat"

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    @staticmethod
    def get_dummy_input_for_compile() -> torch.Tensor:
        return torch.zeros(1, 3, 8, 8, dtype=torch.uint8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        assert x.dtype == torch.uint8
        x = F.adaptive_avg_pool2d(x.float() / 255 - 0.5, 4).flatten(1)
        return (torch.tanh(4 * x @ self.proj),)


if TINY not in FEATURE_EXTRACTORS_REGISTRY:
    torch_fidelity.register_feature_extractor(TINY, TinyExtractor)


def _write_pngs(folder: Path, n: int, shift: int, seed: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        img = rng.integers(0, 256, (16, 16, 3)) + shift * rng.random()
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"{i:03d}.png")


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("fid")
    _write_pngs(root / "fake", 40, shift=60, seed=1)
    _write_pngs(root / "real", 36, shift=0, seed=2)
    return root / "fake", root / "real"


def test_frechet_distance_closed_forms() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 6))
    mu, sigma = a.mean(0), np.cov(a, rowvar=False)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-8
    # 1-D Gaussians: (m1 - m2)^2 + (s1 - s2)^2 with standard deviations s
    m1, s1, m2, s2 = 0.3, 1.5, -1.2, 0.4
    expected = (m1 - m2) ** 2 + (s1 - s2) ** 2
    assert frechet_distance([m1], [[s1**2]], [m2], [[s2**2]]) == pytest.approx(expected, rel=1e-10)
    # diagonal covariances add up per dimension
    v1, v2 = np.array([1.0, 4.0]), np.array([9.0, 1.0])
    d = frechet_distance(np.zeros(2), np.diag(v1), np.ones(2), np.diag(v2))
    assert d == pytest.approx(2 + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2))
    # singular covariances (fewer samples than dimensions) still give a finite number
    b = rng.normal(size=(3, 6))
    assert np.isfinite(fd_from_features(a[:3], b))
    with pytest.raises(ValueError, match="matching shapes"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


def test_matches_torch_fidelity(folders: tuple[Path, Path]) -> None:
    fake, real = folders
    ours = compute_fid_kid(
        fake,
        real,
        TinyExtractor(TINY, ["feat"]),
        batch_size=16,
        kid_subsets=10,
        kid_subset_size=20,
    )
    ref = torch_fidelity.calculate_metrics(
        input1=str(fake),
        input2=str(real),
        fid=True,
        kid=True,
        feature_extractor=TINY,
        kid_subsets=10,
        kid_subset_size=20,
        batch_size=16,
        cuda=False,
        cache=False,
        verbose=False,
        save_cpu_ram=True,
    )
    assert ours["fid"] > 0.01  # the folders really differ
    assert ours["fid"] == pytest.approx(ref["frechet_inception_distance"], rel=1e-4)
    assert ours["kid_mean"] == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-4)
    assert ours["kid_std"] == pytest.approx(ref["kernel_inception_distance_std"], rel=1e-4)
    assert (ours["num_fake"], ours["num_real"], ours["kid_subset_size"]) == (40, 36, 20)


def test_real_statistics_cache(folders: tuple[Path, Path], tmp_path: Path) -> None:
    fake, real = folders
    ext = TinyExtractor(TINY, ["feat"])
    kw = {"kid_subsets": 5, "kid_subset_size": 10, "cache_dir": tmp_path, "cache_key": "ds-16x16"}
    first = compute_fid_kid(fake, real, ext, **kw)
    assert (tmp_path / "ds-16x16.npz").is_file()
    second = compute_fid_kid(fake, None, ext, **kw)  # real images not needed any more
    assert second == first
    with pytest.raises(ValueError, match="8-d features"):
        compute_fid_kid(fake, None, lambda x: ext(x)[0][:, :4], **kw)
    with pytest.raises(FileNotFoundError, match="cache"):
        compute_fid_kid(fake, None, ext, cache_dir=tmp_path, cache_key="other")
    with pytest.raises(ValueError, match="both cache_dir and cache_key"):
        compute_fid_kid(fake, real, ext, cache_dir=tmp_path)


def test_kid_subset_size_error() -> None:
    with pytest.raises(ValueError, match="kid_subset_size"):
        kid(np.zeros((5, 3)), np.zeros((5, 3)), subsets=2, subset_size=6)


def test_inception_weights_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    with pytest.raises(ValueError, match=f"eval.inception_weights nor {INCEPTION_WEIGHTS_ENV}"):
        InceptionFeatures(None)
    with pytest.raises(FileNotFoundError, match="eval.inception_weights=.*nope.pth"):
        InceptionFeatures(tmp_path / "nope.pth")
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(tmp_path / "env.pth"))
    with pytest.raises(FileNotFoundError, match=f"{INCEPTION_WEIGHTS_ENV}=.*env.pth"):
        InceptionFeatures(None)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(ValueError, match="not a loadable state dict"):
        InceptionFeatures(garbage)
    not_tensors = tmp_path / "ints.pth"
    torch.save({"a": 1}, not_tensors)
    with pytest.raises(ValueError, match="state dict of tensors"):
        InceptionFeatures(not_tensors)
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(2, 2)}, wrong)
    with pytest.raises(ValueError, match="does not match torch-fidelity's InceptionV3"):
        InceptionFeatures(wrong)


def test_inception_loads_local_weights_without_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch_fidelity.feature_extractor_inceptionv3 as inc

    # A randomly initialised state dict with the real key names (the real file is not shipped).
    with monkeypatch.context() as m:
        m.setattr(inc, "load_state_dict_from_url", lambda *a, **k: {})
        m.setattr(inc.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None)
        state = inc.FeatureExtractorInceptionV3("x", ["2048"]).state_dict()
    path = tmp_path / "inception.pth"
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, path)

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("tried to download Inception weights")

    monkeypatch.setattr(inc, "load_state_dict_from_url", no_download)
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(path))
    net = InceptionFeatures()
    feats = net(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8))
    assert feats.shape == (2, 2048) and torch.isfinite(feats).all()


def test_fd_judge() -> None:
    g = torch.Generator().manual_seed(0)
    a = [torch.rand(8, 3, 4, 4, generator=g) * 2 - 1 for _ in range(4)]
    b = [torch.rand(8, 3, 4, 4, generator=g) * 2 - 1 for _ in range(4)]

    def feature_fn(x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))

    assert abs(fd_judge(feature_fn, a, a)) < 1e-8
    same_dist = fd_judge(feature_fn, a, b)
    shifted = fd_judge(feature_fn, a, [x * 0.5 + 0.5 for x in b])
    assert shifted > 0.2 > same_dist
    # the closed form: the means differ by ~0.5 per channel on 3 channels
    fa = torch.cat([feature_fn(x) for x in a]).double()
    fb = torch.cat([feature_fn(x * 0.5 + 0.5) for x in b]).double()
    assert shifted == pytest.approx(fd_from_features(fa, fb))
    with pytest.raises(ValueError, match="empty"):
        fd_judge(feature_fn, [], a)

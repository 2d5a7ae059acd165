"""FID / KID with torch-fidelity's Inception (weights from a local file only) and ``fd_judge``.

``fd_judge`` is a Frechet distance on the segmentation judge's pooled features. It is NOT FID
(different network, different feature space) and must never be reported as FID.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
import torch
from PIL import Image
from torch import Tensor

from spadelab.atomic import atomic_path

__all__ = [
    "INCEPTION_WEIGHTS_ENV",
    "InceptionFeatures",
    "compute_fid_kid",
    "fd_from_features",
    "fd_judge",
    "feature_statistics",
    "frechet_distance",
    "kid",
    "list_images",
    "resolve_inception_weights",
]

INCEPTION_WEIGHTS_ENV = "SPADELAB_INCEPTION_WEIGHTS"
_WEIGHTS_HINT = (
    "get the TF-ported Inception weights file weights-inception-2015-12-05-6726825d.pth "
    "(torch-fidelity release v0.2.0) on a machine with internet access, copy it here and set "
    f"eval.inception_weights or {INCEPTION_WEIGHTS_ENV}"
)


# --------------------------------------------------------------------------------------------
# Distances
# --------------------------------------------------------------------------------------------


def frechet_distance(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    eps: float = 1e-6,
) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 sqrtm(S1 S2)), in float64.

    A singular product gets ``eps`` added to the diagonals; imaginary parts of the square root
    from round-off are dropped (an error if they are not small).
    """
    mu1, mu2 = (
        np.atleast_1d(np.asarray(mu1, np.float64)),
        np.atleast_1d(np.asarray(mu2, np.float64)),
    )
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if (
        mu1.shape != mu2.shape
        or sigma1.shape != sigma2.shape
        or sigma1.shape != (len(mu1), len(mu1))
    ):
        raise ValueError(
            f"Frechet distance needs matching shapes: mu {mu1.shape} vs {mu2.shape}, "
            f"sigma {sigma1.shape} vs {sigma2.shape}"
        )
    diff = mu1 - mu2
    with warnings.catch_warnings():  # singular products are handled below
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(
                f"sqrtm(sigma1 @ sigma2) has a large imaginary part "
                f"({np.abs(covmean.imag).max():.3g}); the covariances are not valid statistics"
            )
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def feature_statistics(features: np.ndarray | Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) features -> (mu (D,), sigma (D, D)), float64, unbiased covariance."""
    if isinstance(features, Tensor):
        features = features.detach().cpu().numpy()
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need features of shape (N >= 2, D), got {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def fd_from_features(features1: np.ndarray | Tensor, features2: np.ndarray | Tensor) -> float:
    mu1, s1 = feature_statistics(features1)
    mu2, s2 = feature_statistics(features2)
    return frechet_distance(mu1, s1, mu2, s2)


def _polynomial_mmd2(
    x: np.ndarray, y: np.ndarray, degree: int, gamma: float, coef0: float
) -> float:
    """Unbiased MMD^2 with k(a, b) = (gamma a.b + coef0)^degree (the KID estimator)."""
    m = x.shape[0]
    k_xx = (x @ x.T * gamma + coef0) ** degree
    k_yy = (y @ y.T * gamma + coef0) ** degree
    k_xy = (x @ y.T * gamma + coef0) ** degree
    sum_xx = k_xx.sum() - np.trace(k_xx)
    sum_yy = k_yy.sum() - np.trace(k_yy)
    return float((sum_xx + sum_yy) / (m * (m - 1)) - 2 * k_xy.sum() / (m * m))


def kid(
    features1: np.ndarray | Tensor,
    features2: np.ndarray | Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    coef0: float = 1.0,
    gamma: float | None = None,
    seed: int = 2020,
) -> tuple[float, float]:
    """Kernel Inception Distance -> (mean, std) over ``subsets`` random subsets.

    Same estimator and subset sampling as torch-fidelity (``np.random.RandomState(seed)``,
    drawing from ``features1`` then ``features2``), computed in float64.
    """
    f1, f2 = (
        np.asarray(f.detach().cpu().numpy() if isinstance(f, Tensor) else f, np.float64)
        for f in (features1, features2)
    )
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise ValueError(f"KID needs (N, D) features of equal D, got {f1.shape} and {f2.shape}")
    if subset_size < 2 or subset_size > min(len(f1), len(f2)):
        raise ValueError(
            f"KID subset_size={subset_size} must be in [2, min(#images)={min(len(f1), len(f2))}]; "
            "lower eval.kid_subset_size or evaluate more images"
        )
    gamma = 1.0 / f1.shape[1] if gamma is None else gamma
    rng = np.random.RandomState(seed)
    mmds = np.zeros(subsets)
    for i in range(subsets):
        a = f1[rng.choice(len(f1), subset_size, replace=False)]
        b = f2[rng.choice(len(f2), subset_size, replace=False)]
        mmds[i] = _polynomial_mmd2(a, b, degree, gamma, coef0)
    return float(mmds.mean()), float(mmds.std())


# --------------------------------------------------------------------------------------------
# Inception features
# --------------------------------------------------------------------------------------------


def resolve_inception_weights(weights_path: str | os.PathLike[str] | None) -> Path:
    """``eval.inception_weights``, else ``$SPADELAB_INCEPTION_WEIGHTS``; must be an existing file."""
    source = "eval.inception_weights"
    if weights_path is None or str(weights_path) == "":
        weights_path = os.environ.get(INCEPTION_WEIGHTS_ENV) or None
        source = INCEPTION_WEIGHTS_ENV
    if weights_path is None:
        raise ValueError(
            f"no Inception weights: neither eval.inception_weights nor {INCEPTION_WEIGHTS_ENV} is "
            f"set (FID/KID never download); {_WEIGHTS_HINT}"
        )
    path = Path(weights_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{source}={path} does not exist; {_WEIGHTS_HINT}")
    return path


class InceptionFeatures(torch.nn.Module):
    """torch-fidelity's ``FeatureExtractorInceptionV3`` (2048-d pool features) from a local file.

    Input: uint8 images (N, 3, H, W); output float32 (N, 2048). Never downloads: a missing or
    unusable weights file is an error naming ``eval.inception_weights``.
    """

    name = "inception-v3-compat"

    def __init__(
        self,
        weights_path: str | os.PathLike[str] | None = None,
        device: torch.device | str = "cpu",
        feature: str = "2048",
    ) -> None:
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        path = resolve_inception_weights(weights_path)
        # Validate with the safe loader first: torch-fidelity loads with weights_only=False.
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(
                f"eval.inception_weights={path} is not a loadable state dict "
                f"({type(err).__name__}); {_WEIGHTS_HINT}"
            ) from err
        if not isinstance(state, Mapping) or not all(
            isinstance(v, Tensor) for v in state.values()
        ):
            raise ValueError(
                f"eval.inception_weights={path} does not hold a state dict of tensors; {_WEIGHTS_HINT}"
            )
        del state
        try:
            self.net = FeatureExtractorInceptionV3(
                self.name, [feature], feature_extractor_weights_path=str(path)
            )
        except RuntimeError as err:  # load_state_dict: missing/unexpected keys, wrong shapes
            first = str(err).splitlines()[0] if str(err) else ""
            raise ValueError(
                f"eval.inception_weights={path} does not match torch-fidelity's InceptionV3 "
                f"({first}); {_WEIGHTS_HINT}"
            ) from err
        self.net.to(device)
        self.device = torch.device(device)

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        return self.net(images.to(self.device))[0]


# --------------------------------------------------------------------------------------------
# FID / KID over folders of PNGs
# --------------------------------------------------------------------------------------------


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """PNG files directly in ``folder``, sorted (the order torch-fidelity uses)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".png"),
        key=lambda p: str(p.resolve()),
    )


def _extract(extractor: Callable[[Tensor], Any], files: list[Path], batch_size: int) -> np.ndarray:
    """Features of PNG files as uint8 (N, 3, H, W) batches; consecutive same-size images batch."""
    out: list[np.ndarray] = []
    batch: list[Tensor] = []

    def flush() -> None:
        if not batch:
            return
        with torch.no_grad():
            feats = extractor(torch.stack(batch))
        if isinstance(feats, (tuple, list)):  # a torch-fidelity FeatureExtractorBase
            feats = feats[0]
        out.append(feats.detach().cpu().double().reshape(len(batch), -1).numpy())
        batch.clear()

    for f in files:
        with Image.open(f) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
        img = torch.from_numpy(arr.copy()).permute(2, 0, 1)
        if batch and (len(batch) >= batch_size or img.shape != batch[0].shape):
            flush()
        batch.append(img)
    flush()
    return np.concatenate(out, 0)


def _load_real_cache(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in ("mu", "sigma", "features")}


def compute_fid_kid(
    fake_dir: str | os.PathLike[str],
    real_dir: str | os.PathLike[str] | None,
    extractor: Callable[[Tensor], Any],
    cache_dir: str | os.PathLike[str] | None = None,
    cache_key: str | None = None,
    batch_size: int = 50,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 2020,
) -> dict[str, Any]:
    """FID and KID between two folders of PNGs.

    ``extractor`` maps uint8 (N, 3, H, W) to (N, D) features (an :class:`InceptionFeatures`, or a
    torch-fidelity ``FeatureExtractorBase`` whose first output is used). The real images'
    statistics are cached in ``cache_dir/{cache_key}.npz``; the key must identify the dataset,
    split, resolution and extractor. With a cache hit ``real_dir`` may be None. The KID subset
    size is capped at the number of images (reported as ``kid_subset_size``).
    """
    if (cache_dir is None) != (cache_key is None):
        raise ValueError(
            "give both cache_dir and cache_key to cache the real statistics, or neither"
        )
    cache_path = Path(cache_dir) / f"{cache_key}.npz" if cache_dir is not None else None
    fake_files = list_images(fake_dir)
    if len(fake_files) < 2:
        raise ValueError(f"{fake_dir} holds {len(fake_files)} PNG images; FID needs at least 2")
    fake = _extract(extractor, fake_files, batch_size)

    real_files = list_images(real_dir) if real_dir is not None else None
    real: dict[str, np.ndarray] | None = None
    if cache_path is not None and cache_path.is_file():
        real = _load_real_cache(cache_path)
        if real_files is not None and len(real_files) != len(real["features"]):
            real = None  # the folder changed: recompute and overwrite
    if real is None:
        if real_files is None:
            raise FileNotFoundError(
                f"no real images: real_dir is None and the cache {cache_path} does not exist"
            )
        if len(real_files) < 2:
            raise ValueError(
                f"{real_dir} holds {len(real_files)} PNG images; FID needs at least 2"
            )
        feats = _extract(extractor, real_files, batch_size)
        mu, sigma = feature_statistics(feats)
        real = {"mu": mu, "sigma": sigma, "features": feats}
        if cache_path is not None:
            with atomic_path(cache_path) as tmp:
                np.savez(tmp, **real)
    if real["features"].shape[1] != fake.shape[1]:
        raise ValueError(
            f"cached real statistics {cache_path} have {real['features'].shape[1]}-d features but "
            f"the extractor gives {fake.shape[1]}-d; delete the cache file or change cache_key"
        )
    mu_f, sigma_f = feature_statistics(fake)
    subset = min(kid_subset_size, len(fake), len(real["features"]))
    kid_mean, kid_std = kid(fake, real["features"], kid_subsets, subset, seed=seed)
    return {
        "fid": frechet_distance(mu_f, sigma_f, real["mu"], real["sigma"]),
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "kid_subset_size": subset,
        "num_fake": len(fake),
        "num_real": len(real["features"]),
        "extractor": str(getattr(extractor, "name", type(extractor).__name__)),
    }


# --------------------------------------------------------------------------------------------
# fd_judge
# --------------------------------------------------------------------------------------------


def fd_judge(
    feature_fn: Callable[[Tensor], Tensor],
    images1: Iterable[Tensor],
    images2: Iterable[Tensor],
) -> float:
    """Frechet distance of the judge's pooled features; batches (N, 3, H, W) in [-1, 1].

    Not FID: report it as ``fd_judge``.
    """

    def collect(images: Iterable[Tensor]) -> np.ndarray:
        with torch.no_grad():
            feats = [feature_fn(x).detach().cpu().double() for x in images]
        if not feats:
            raise ValueError("fd_judge got an empty image iterator")
        return torch.cat(feats).numpy()

    return fd_from_features(collect(images1), collect(images2))

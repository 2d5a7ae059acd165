"""Style fidelity: does ``synthesize(label, style=an image of style k)`` come out in style k?

The synthetic landscapes render every scene in one of a few known global styles (noon, sunset,
overcast, winter). A small classifier trained on the real images, cached like the judge, names
the style of an image; its accuracy on real validation images is the ceiling. Style fidelity is
the fraction of generated images classified as the style of the image that guided them; chance
is ``1 / num_styles``. Only datasets that report a ``style`` per sample can be scored.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spadelab.atomic import atomic_path

T = TypeVar("T")

__all__ = [
    "MissingStyleError",
    "StyleNet",
    "load_or_train_style_classifier",
    "style_accuracy",
    "style_fidelity",
    "train_style_classifier",
]


class StyleNet(nn.Module):
    """Images (N, 3, H, W) in [-1, 1] -> style logits (N, num_styles); any H, W >= 8."""

    def __init__(self, num_styles: int, width: int = 16) -> None:
        super().__init__()
        if num_styles < 2 or width < 1:
            raise ValueError(
                f"StyleNet needs num_styles >= 2 and width >= 1, got {num_styles}, {width}"
            )
        self.config = {"num_styles": num_styles, "width": width}
        layers: list[nn.Module] = []
        cin = 3
        for cout in (width, 2 * width, 4 * width):
            layers += [
                nn.Conv2d(cin, cout, 3, stride=2, padding=1),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
            ]
            cin = cout
        self.features = nn.Sequential(*layers)
        # Mean and max pooling: global colour (mean) and highlights such as a sun or snow (max).
        self.head = nn.Linear(2 * cin, num_styles)

    def forward(self, images: Tensor) -> Tensor:
        x = self.features(images)
        return self.head(torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1))


def _cycle(loader: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("the style classifier's train_loader yielded no batches")


def _styles(batch: Mapping[str, Any], device: torch.device) -> Tensor:
    if "style" not in batch:
        raise ValueError(
            "this dataset has no per-sample `style`; style fidelity needs data=synthetic"
        )
    return torch.as_tensor(batch["style"], device=device).long().view(-1)


@torch.no_grad()
def style_accuracy(
    classifier: nn.Module, loader: Iterable[Mapping[str, Any]], device: torch.device | str = "cpu"
) -> dict[str, float]:
    """Accuracy (percent) of ``classifier`` on the loader's real images: the ceiling."""
    device = torch.device(device)
    classifier.eval()
    correct = total = 0
    for batch in loader:
        target = _styles(batch, device)
        correct += int((classifier(batch["image"].to(device).float()).argmax(1) == target).sum())
        total += target.numel()
    return {"accuracy": 100.0 * correct / max(total, 1), "num_images": total}


def train_style_classifier(
    train_loader: Iterable[Mapping[str, Any]],
    val_loader: Iterable[Mapping[str, Any]],
    num_styles: int,
    steps: int = 400,
    lr: float = 2e-3,
    seed: int = 0,
    width: int = 16,
    device: torch.device | str = "cpu",
) -> tuple[StyleNet, dict[str, Any]]:
    """AdamW with a cosine schedule; deterministic given ``seed`` (the global RNG is forked)."""
    if steps < 1:
        raise ValueError(f"style classifier steps={steps} must be >= 1")
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = StyleNet(num_styles, width).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
        data = _cycle(train_loader)
        model.train()
        loss_value = math.nan
        for step in range(steps):
            for group in optimizer.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
            batch = next(data)
            loss = F.cross_entropy(
                model(batch["image"].to(device).float()), _styles(batch, device)
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_value = loss.item()
    model.eval()
    ceiling = style_accuracy(model, val_loader, device)
    report = {
        "val_accuracy": ceiling["accuracy"],
        "num_val_images": ceiling["num_images"],
        "final_train_loss": loss_value,
    }
    return model, report


def load_or_train_style_classifier(
    cache_dir: str | Path,
    cache_key: str,
    train_loader: Iterable[Mapping[str, Any]] | None,
    val_loader: Iterable[Mapping[str, Any]] | None,
    num_styles: int,
    steps: int = 400,
    lr: float = 2e-3,
    seed: int = 0,
    width: int = 16,
    device: torch.device | str = "cpu",
) -> tuple[StyleNet, dict[str, Any]]:
    """``cache_dir/style-{cache_key}.pt`` (+ ``.json``), or train it and save it there."""
    config = {"num_styles": num_styles, "steps": steps, "lr": lr, "seed": seed, "width": width}
    cache = Path(cache_dir).expanduser()
    weights, sidecar = cache / f"style-{cache_key}.pt", cache / f"style-{cache_key}.json"
    if weights.is_file() and sidecar.is_file():
        meta = json.loads(sidecar.read_text())
        if meta.get("config") == config:
            model = StyleNet(num_styles, width)
            model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
            return model.to(device).eval(), meta["metrics"]
    if train_loader is None or val_loader is None:
        raise ValueError(f"no cached style classifier at {weights} and no loaders to train one")
    model, report = train_style_classifier(
        train_loader, val_loader, num_styles, steps, lr, seed, width, device
    )
    cache.mkdir(parents=True, exist_ok=True)
    with atomic_path(weights) as tmp:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
    with atomic_path(sidecar) as tmp:
        tmp.write_text(json.dumps({"config": config, "metrics": report}, indent=2))
    return model, report


Synthesize = Callable[[Mapping[str, Any], Tensor], Tensor]


def first_of_each_style(items: Iterable[tuple[int, T]], num_styles: int) -> dict[int, T]:
    """The first item of each style from ``(style, item)`` pairs; stops once all are seen.

    The guiding images of style fidelity and of the demo's ``styles.png``.
    """
    picked: dict[int, T] = {}
    for style, item in items:
        picked.setdefault(int(style), item)
        if len(picked) == num_styles:
            break
    return picked


class MissingStyleError(ValueError):
    """The validation split has no image of some style to guide with."""


@torch.no_grad()
def style_fidelity(
    synthesize: Synthesize,
    loader: Iterable[Mapping[str, Any]],
    classifier: nn.Module,
    num_styles: int,
    max_images: int | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Guide every label map by one image of each style; how often is the output that style?

    ``synthesize(batch, style_images)`` returns images for the batch's label maps, guided by
    ``style_images`` (same batch size). The guiding image of style k is a real image of style k
    from the loader, taken from another scene (the first pass collects one per style), so the
    label map cannot leak the answer.
    """
    device = torch.device(device)
    classifier.eval()
    exemplars = first_of_each_style(
        (
            (int(style), (image, str(path)))
            for batch in loader
            for image, style, path in zip(batch["image"], _styles(batch, device), batch["path"])
        ),
        num_styles,
    )
    missing = sorted(set(range(num_styles)) - set(exemplars))
    if missing:
        raise MissingStyleError(
            f"the validation split has no image of style(s) {missing}; use more validation "
            "images (data.max_val_samples)"
        )
    confusion = torch.zeros(num_styles, num_styles, dtype=torch.long)
    seen = 0
    for batch in loader:
        n = len(batch["path"])
        if max_images is not None:
            n = min(n, max_images - seen)
            if n <= 0:
                break
            batch = {k: v[:n] for k, v in batch.items()}
        for k in range(num_styles):
            image, path = exemplars[k]
            keep = [i for i in range(n) if str(batch["path"][i]) != path]
            if not keep:
                continue
            sub = {
                key: v[keep] if torch.is_tensor(v) else [v[i] for i in keep]
                for key, v in batch.items()
            }
            guide = image.to(device).unsqueeze(0).expand(len(keep), -1, -1, -1)
            predicted = classifier(synthesize(sub, guide).float()).argmax(1).cpu()
            confusion[k] += torch.bincount(predicted, minlength=num_styles)
        seen += n
    total = int(confusion.sum())
    return {
        "style_fidelity": 100.0 * float(confusion.diag().sum()) / max(total, 1),
        "chance": 100.0 / num_styles,
        "num_generated": total,
        "confusion": confusion.tolist(),  # rows: guiding style, columns: predicted style
    }

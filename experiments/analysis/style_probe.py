"""Where is a style lost: in the VAE encoder, or in the generator? A probe of the encoder's code.

    .venv/bin/python experiments/analysis/style_probe.py RUN_DIR [RUN_DIR ...] [--images N]

Style fidelity (``spadelab evaluate``) asks whether ``synthesize(label, style=image of style
k)`` comes out in style k. When a style fails there, either the encoder's ``mu`` does not tell
it apart from the others, or it does and the generator ignores the difference. For each VAE run
(a `spadelab train` run dir with checkpoints/last.ckpt), this encodes N training and N
validation images of the synthetic landscapes with the raw and the EMA encoder, and with a
freshly initialised encoder of the same architecture (seed 0: what the architecture keeps
before any training). It fits one centroid per style on the training codes and classifies the
validation codes by the nearest centroid (each dimension standardised with the training codes'
mean and std), both for mu and for one draw of z = mu + eps * sigma, which is what the
generator is given, and prints the accuracy per style. High probe accuracy with low style
fidelity for a style puts the loss in the generator.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from spadelab.builders import build_encoder
from spadelab.checkpoints import load_checkpoint


@torch.no_grad()
def codes(
    encoder: torch.nn.Module, dataset, count: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mu and one sampled z of the first ``count`` images, their style indices)."""
    mus, zs, styles = [], [], []
    generator = torch.Generator().manual_seed(0)
    for start in range(0, min(count, len(dataset)), 32):
        samples = [dataset[i] for i in range(start, min(start + 32, count, len(dataset)))]
        images = torch.stack([s["image"] for s in samples])
        mu, logvar = encoder(images)
        mus.append(mu)
        # What the generator is given: a draw of z = mu + eps * sigma.
        eps = torch.randn(mu.shape, generator=generator)
        zs.append(mu + eps * torch.exp(0.5 * logvar))
        styles += [int(s["style"]) for s in samples]
    return torch.cat(mus), torch.cat(zs), torch.tensor(styles)


def probe(
    train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor], k: int
):
    """Nearest-centroid accuracy (%) per style of the validation codes, and overall."""
    (x, y), (xv, yv) = train, val
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    x, xv = (x - mean) / std, (xv - mean) / std
    centroids = torch.stack([x[y == s].mean(0) for s in range(k)])
    predicted = torch.cdist(xv, centroids).argmin(1)
    per_style = [100.0 * (predicted[yv == s] == s).float().mean().item() for s in range(k)]
    return per_style, 100.0 * (predicted == yv).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--images", type=int, default=400, help="images per split")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for run in args.runs:
        module = load_checkpoint(run).eval()
        if module.encoder is None:
            raise SystemExit(f"{run}: not a VAE run (encoder=none); train it with encoder=vae")
        datamodule = instantiate(OmegaConf.create(module.cfg["data"]))
        datamodule.setup("fit")
        styles = list(datamodule.val_set.styles)
        torch.manual_seed(0)
        fresh = build_encoder(module.cfg).eval()  # the run's init, as training starts
        encoders = {"untrained (seed 0)": fresh, "raw": module.encoder}
        if module.encoder_ema is not None:
            encoders["EMA"] = module.encoder_ema
        print(f"### {run}\n")
        print("| encoder | " + " | ".join(styles) + " | all |")
        print("|---|" + "---:|" * (len(styles) + 1))
        for name, encoder in encoders.items():
            encoder.eval()
            (mu, z, y), (mu_val, z_val, y_val) = (
                codes(encoder, datamodule.train_set, args.images),
                codes(encoder, datamodule.val_set, args.images),
            )
            for code, train, val in (("mu", mu, mu_val), ("sampled z", z, z_val)):
                per_style, overall = probe((train, y), (val, y_val), len(styles))
                cells = " | ".join(f"{v:.0f}" for v in per_style)
                print(f"| {name}, {code} | {cells} | {overall:.0f} |")
        print(
            f"\nNearest-centroid accuracy (%) of the encoder's mu, and of one draw of z from it "
            f"(what the generator gets), on {args.images} validation images; chance "
            f"{100 / len(styles):.0f}%.\n"
        )


if __name__ == "__main__":
    main()

"""The demo: its 4x4 grid of (label | real | generated [| style-guided]) samples, the styles
figure of a run with an image encoder, and the whole demo at smoke scale."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from spadelab.commands.demo import run, sample_grid, style_exemplars, style_grid


def test_sample_grid_is_a_4x4_block_of_triplets() -> None:
    n, size = 16, 8
    label = torch.randint(0, 10, (n, 1, size, size))
    real = torch.full((n, 3, size, size), -1.0)  # black
    fake = torch.zeros(n, 3, size, size)  # grey
    grid = sample_grid(label, real, fake)
    triplet_h, triplet_w = size + 2, 3 * (size + 1) + 1
    assert grid.shape == (3, 4 * (triplet_h + 6) + 6, 4 * (triplet_w + 6) + 6)
    # The second triplet of the first row: label, then the black real, then the grey fake.
    top, left = 6 + 1, 6 + triplet_w + 6 + 1
    real_x, fake_x = left + size + 1, left + 2 * (size + 1)
    assert torch.all(grid[:, top : top + size, real_x : real_x + size] == 0.0)
    assert torch.all(grid[:, top : top + size, fake_x : fake_x + size] == 0.5)
    assert torch.all(grid[:, :, :6] == 1.0)  # white margin between triplets


def test_a_style_guided_column_makes_quadruplets() -> None:
    n, size = 16, 8
    label = torch.randint(0, 10, (n, 1, size, size))
    real, fake = torch.full((n, 3, size, size), -1.0), torch.zeros(n, 3, size, size)
    guided = torch.ones(n, 3, size, size)  # white
    grid = sample_grid(label, real, fake, guided.to(torch.bfloat16))
    quad_w = 4 * (size + 1) + 1
    assert grid.shape[-1] == 4 * (quad_w + 6) + 6
    guided_x = 6 + 1 + 3 * (size + 1)
    assert torch.all(grid[:, 7 : 7 + size, guided_x : guided_x + size] == 1.0)
    assert torch.all(grid[:, 7 : 7 + size, guided_x - size - 1 : guided_x - 1] == 0.5)


def test_sample_grid_rejects_mismatched_samples() -> None:
    with pytest.raises(ValueError, match="same samples"):
        sample_grid(torch.zeros(2, 1, 4, 4), torch.zeros(2, 3, 4, 4), torch.zeros(3, 3, 4, 4))
    with pytest.raises(ValueError, match="same samples"):
        sample_grid(torch.zeros(2, 1, 4, 4))


def test_style_grid_puts_each_guide_before_its_outputs() -> None:
    m, s, size = 3, 2, 4
    label = torch.zeros(m, 1, size, size, dtype=torch.long)
    guides = torch.stack([torch.full((3, size, size), -1.0), torch.full((3, size, size), 1.0)])
    guided = torch.zeros(s, m, 3, size, size)
    grid = style_grid(label, guides, guided)
    cell = size + 2
    assert grid.shape == (3, (s + 1) * cell + 2, (m + 1) * cell + 2)
    assert torch.all(grid[:, 2 : 2 + size, 2 : 2 + size] == 1.0)  # white header corner
    row1, row2 = 2 + cell, 2 + 2 * cell
    assert torch.all(grid[:, row1 : row1 + size, 2 : 2 + size] == 0.0)  # guide 0: black
    assert torch.all(grid[:, row2 : row2 + size, 2 : 2 + size] == 1.0)  # guide 1: white
    assert torch.all(grid[:, row1 : row1 + size, 2 + cell : 2 + cell + size] == 0.5)
    with pytest.raises(ValueError, match="guides, label maps"):
        style_grid(label, guides, torch.zeros(m, s, 3, size, size))


class _Styled:
    styles = ["noon", "sunset"]

    def __init__(self, order: list[int]) -> None:
        self.order = order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, index: int) -> dict:
        return {"index": index, "style": torch.tensor(self.order[index])}


def test_style_exemplars_take_the_first_of_each_style_after_the_grid_scenes() -> None:
    picked = style_exemplars(_Styled([1, 0, 1, 1, 0, 1]), skip=2)
    assert [(p["index"], int(p["style"])) for p in picked] == [(4, 0), (2, 1)]

    class Plain(_Styled):
        styles = None

    assert [p["index"] for p in style_exemplars(Plain([0] * 9), skip=3, count=4)] == [3, 4, 5, 6]


@pytest.mark.slow
def test_the_demo_of_a_vae_run_shows_style_guided_synthesis(tmp_path: Path, capsys) -> None:
    metrics = run(
        [
            "scale=smoke",
            "encoder=vae",
            "data.max_train_samples=8",
            "data.max_val_samples=40",
            "trainer.max_epochs=1",
            "callbacks.progress=null",
            "trainer.enable_progress_bar=false",
        ],
        runs_root=tmp_path,
    )
    (run_dir,) = tmp_path.iterdir()
    printed = capsys.readouterr().out
    assert "guided by the real image" in printed and "styles.png" in printed
    assert 0.0 <= metrics["generator"]["miou"] <= 100.0
    assert 0.0 <= metrics["generator"]["style_fidelity"] <= 100.0
    grid = Image.open(run_dir / "demo" / "grid.png")
    styles = Image.open(run_dir / "demo" / "styles.png")
    size = Image.open(run_dir / "demo" / "synthesized" / "00.png").width
    assert grid.width == 4 * (4 * (size + 1) + 1 + 6) + 6  # quadruplets: a guided column
    assert styles.size == ((4 + 1) * (size + 2) + 2, (4 + 1) * (size + 2) + 2)  # 4 styles x 4

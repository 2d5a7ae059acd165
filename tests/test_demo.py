"""The demo's grid: 16 samples as a compact 4x4 block of (label | real | generated) triplets."""

from __future__ import annotations

import pytest
import torch

from spadelab.commands.demo import triplet_grid


def test_triplet_grid_is_a_4x4_block_of_triplets() -> None:
    n, size = 16, 8
    label = torch.randint(0, 10, (n, 1, size, size))
    real = torch.full((n, 3, size, size), -1.0)  # black
    fake = torch.zeros(n, 3, size, size)  # grey
    grid = triplet_grid(label, real, fake)
    triplet_h, triplet_w = size + 2, 3 * (size + 1) + 1
    assert grid.shape == (3, 4 * (triplet_h + 6) + 6, 4 * (triplet_w + 6) + 6)
    # The second triplet of the first row: label, then the black real, then the grey fake.
    top, left = 6 + 1, 6 + triplet_w + 6 + 1
    real_x, fake_x = left + size + 1, left + 2 * (size + 1)
    assert torch.all(grid[:, top : top + size, real_x : real_x + size] == 0.0)
    assert torch.all(grid[:, top : top + size, fake_x : fake_x + size] == 0.5)
    assert torch.all(grid[:, :, :6] == 1.0)  # white margin between triplets


def test_triplet_grid_rejects_mismatched_samples() -> None:
    with pytest.raises(ValueError, match="same samples"):
        triplet_grid(torch.zeros(2, 1, 4, 4), torch.zeros(2, 3, 4, 4), torch.zeros(3, 3, 4, 4))

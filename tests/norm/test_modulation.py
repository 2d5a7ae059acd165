"""The ``modulation`` axis: SPADE, Concat and Affine, and the paper's wash-away argument."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from spadelab.norm import param_free
from spadelab.norm.modulation import SPADE, Affine, Concat, encode_labels

L, C = 5, 6  # label classes, activation channels


def _uniform_label(label: int, size: int = 8, n: int = 1) -> torch.Tensor:
    one_hot = torch.zeros(n, L, size, size)
    one_hot[:, label] = 1.0
    return one_hot


def _randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial weights everywhere (Affine starts as the identity affine)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return module


# --- The wash-away argument (SPADE paper sec. 3, Fig. 3) -------------------------------------


def test_instance_norm_washes_away_a_uniform_label_map() -> None:
    torch.manual_seed(0)
    # A 3x3 conv without padding keeps a uniform input uniform, as in the paper's argument.
    conv = nn.Conv2d(L, C, 3)
    norm = param_free.instance(C)
    a, b = conv(_uniform_label(1)), conv(_uniform_label(3))
    assert not torch.allclose(a, b, atol=1e-3), "the conv itself sees the labels"
    out_a, out_b = norm(a), norm(b)
    torch.testing.assert_close(out_a, torch.zeros_like(out_a), atol=1e-4, rtol=0)
    torch.testing.assert_close(out_a, out_b, atol=1e-4, rtol=0)


def test_spade_keeps_the_label_of_a_uniform_map() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(L, C, 3)
    spade = SPADE(C, L, param_free.instance, hidden_channels=8)
    outs = {}
    for label in (1, 3):
        label_map = _uniform_label(label, size=6)
        x = conv(_uniform_label(label))
        outs[label] = spade(x, label_map)
        # Normalized activations are zero, so what remains is beta, a function of the label.
        beta = spade.mlp_beta(spade.mlp_shared(label_map))
        torch.testing.assert_close(outs[label], beta, atol=1e-3, rtol=0)
    assert (outs[1] - outs[3]).abs().max() > 1e-2
    # The same label gives the same output: the label is what the output encodes.
    torch.testing.assert_close(spade(conv(_uniform_label(1)), _uniform_label(1, size=6)), outs[1])


@pytest.mark.parametrize("modulation", ["affine", "concat"])
def test_affine_and_concat_wash_away_a_uniform_map_too(modulation: str) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(L, C, 3)
    layer = (
        Affine(C, L, param_free.instance)
        if modulation == "affine"
        else Concat(C, L, param_free.instance)
    )
    _randomize(layer)
    out_a = layer(conv(_uniform_label(1)), _uniform_label(1, size=6))
    out_b = layer(conv(_uniform_label(3)), _uniform_label(3, size=6))
    torch.testing.assert_close(out_a, out_b, atol=1e-3, rtol=0)


# --- Affine and Concat -------------------------------------------------------------------------


def test_affine_ignores_the_label_map(label_map) -> None:
    layer = _randomize(Affine(C, L, param_free.batch))
    x = torch.randn(2, C, 8, 8)
    out = layer(x, label_map(2, L, 8, 8, seed=0))
    torch.testing.assert_close(layer(x, label_map(2, L, 8, 8, seed=1)), out)
    torch.testing.assert_close(layer(x, None), out)
    shape = (1, C, 1, 1)
    expected = F.batch_norm(x, None, None, training=True) * layer.weight.view(shape)
    torch.testing.assert_close(out, expected + layer.bias.view(shape), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kernel_size", [1, 3])
def test_concat_depends_on_the_label_map(label_map, kernel_size: int) -> None:
    layer = _randomize(Concat(C, L, param_free.batch, kernel_size=kernel_size))
    assert layer.conv.in_channels == C + L and layer.conv.out_channels == C
    x = torch.randn(2, C, 8, 8)
    first, second = label_map(2, L, 8, 8, seed=0), label_map(2, L, 8, 8, seed=1)
    out = layer(x, first)
    assert out.shape == x.shape
    assert not torch.allclose(out, layer(x, second), atol=1e-3)
    # conv([x, labels]) -> norm -> affine.
    hidden = layer.conv(torch.cat([x, first], dim=1))
    shape = (1, C, 1, 1)
    normed = F.batch_norm(hidden, None, None, training=True)
    expected = normed * layer.affine.weight.view(shape) + layer.affine.bias.view(shape)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    # A label map at another resolution is resized (nearest) to the activations.
    torch.testing.assert_close(
        layer(x, first.repeat_interleave(2, -1).repeat_interleave(2, -2)), out
    )


# --- SPADE -------------------------------------------------------------------------------------


def test_spade_formula_matches_a_manual_computation(label_map) -> None:
    torch.manual_seed(0)
    spade = SPADE(C, L, param_free.instance, hidden_channels=7, kernel_size=3)
    x = torch.randn(2, C, 8, 8) * 2 + 1
    labels = label_map(2, L, 16, 16)  # twice the activation size: resized with nearest
    out = spade(x, labels)

    resized = labels[:, :, ::2, ::2]
    assert torch.equal(F.interpolate(labels, size=(8, 8), mode="nearest"), resized)
    shared = F.relu(
        F.conv2d(resized, spade.mlp_shared[0].weight, spade.mlp_shared[0].bias, padding=1)
    )
    gamma = F.conv2d(shared, spade.mlp_gamma.weight, spade.mlp_gamma.bias, padding=1)
    beta = F.conv2d(shared, spade.mlp_beta.weight, spade.mlp_beta.bias, padding=1)
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = x.var(dim=(2, 3), unbiased=False, keepdim=True)
    normalized = (x - mean) / torch.sqrt(var + 1e-5)
    torch.testing.assert_close(out, normalized * (1 + gamma) + beta, atol=1e-5, rtol=1e-5)
    # gamma and beta vary per pixel: the modulation is spatially adaptive.
    assert gamma.std(dim=(2, 3)).min() > 0


def test_spade_official_attribute_names() -> None:
    spade = SPADE(C, L, param_free.batch, hidden_channels=8)
    assert set(spade.state_dict()) == {
        "param_free_norm.running_mean",
        "param_free_norm.running_var",
        "param_free_norm.num_batches_tracked",
        "mlp_shared.0.weight",
        "mlp_shared.0.bias",
        "mlp_gamma.weight",
        "mlp_gamma.bias",
        "mlp_beta.weight",
        "mlp_beta.bias",
    }


@pytest.mark.parametrize("kernel_size", [1, 3, 5])
def test_spade_kernel_sizes_keep_the_spatial_size(label_map, kernel_size: int) -> None:
    spade = SPADE(C, L, param_free.batch, hidden_channels=8, kernel_size=kernel_size)
    assert spade.mlp_shared[0].kernel_size == (kernel_size, kernel_size)
    assert spade.mlp_gamma.kernel_size == spade.mlp_beta.kernel_size == (kernel_size, kernel_size)
    x = torch.randn(2, C, 6, 10)
    assert spade(x, label_map(2, L, 12, 20)).shape == x.shape


@pytest.mark.parametrize("cls", [SPADE, Concat])
def test_even_kernel_sizes_are_rejected(cls: type) -> None:
    with pytest.raises(ValueError, match="kernel_size=4"):
        cls(C, L, param_free.batch, kernel_size=4)


def test_index_encoding_uses_one_channel(label_map) -> None:
    torch.manual_seed(0)
    onehot = SPADE(C, L, param_free.instance, hidden_channels=8, label_encoding="onehot")
    index = SPADE(C, L, param_free.instance, hidden_channels=8, label_encoding="index")
    assert onehot.mlp_shared[0].in_channels == L
    assert index.mlp_shared[0].in_channels == 1
    concat = Concat(C, L, param_free.instance, label_encoding="index")
    assert concat.conv.in_channels == C + 1

    labels = label_map(2, L, 8, 8)
    encoded = encode_labels(labels, index.label_encoding)
    assert encoded.shape == (2, 1, 8, 8)
    torch.testing.assert_close(encoded, labels.argmax(1, keepdim=True).float() / (L - 1))
    assert encoded.min() >= 0 and encoded.max() <= 1

    x = torch.randn(2, C, 8, 8)
    out = index(x, labels)
    shared = index.mlp_shared(encoded)
    expected = F.instance_norm(x) * (1 + index.mlp_gamma(shared)) + index.mlp_beta(shared)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out, onehot(x, labels), atol=1e-3)


def test_index_encoding_ignores_the_instance_edge_channel() -> None:
    # semantic_nc = label_nc + 1 edge channel (last); a set edge must not become the index.
    labels = torch.zeros(1, L + 1, 2, 2)
    labels[:, 2] = 1.0
    labels[:, L, 0, 0] = 1.0
    encoded = encode_labels(
        labels, SPADE(C, L + 1, param_free.none, label_encoding="index").label_encoding
    )
    torch.testing.assert_close(encoded, torch.full((1, 1, 2, 2), 2 / L))


def test_unknown_label_encoding_is_rejected() -> None:
    with pytest.raises(ValueError, match="scalar"):
        SPADE(C, L, param_free.batch, label_encoding="scalar")


@pytest.mark.parametrize("cls", [SPADE, Concat, Affine])
def test_every_modulation_has_the_same_interface(cls: type, label_map) -> None:
    layer = cls(num_features=C, label_nc=L, param_free_norm=param_free.syncbatch)
    x = torch.randn(2, C, 4, 4, requires_grad=True)
    out = layer(x, label_map(2, L, 8, 8))
    assert out.shape == x.shape
    out.square().sum().backward()
    assert x.grad is not None and all(p.grad is not None for p in layer.parameters())

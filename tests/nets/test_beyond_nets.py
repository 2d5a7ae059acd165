"""CLADE / CLADE-ICPE, the OASIS generator and discriminator, and the CRN generator."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hydra.errors import InstantiationException
from omegaconf import OmegaConf

from spadelab import builders
from spadelab.nets.build import make_norm_layer
from spadelab.nets.crn import CRNGenerator
from spadelab.nets.oasis import OASISDiscriminator, OASISGenerator
from spadelab.norm.clade import CLADE, intra_class_positions
from spadelab.norm.modulation import SPADE
from spadelab.runtime import describe_error


def identity_norm(channels: int) -> nn.Module:
    return nn.Identity()


def test_clade_looks_up_gamma_and_beta_per_class(label_map) -> None:
    layer = CLADE(3, 5, identity_norm)
    with torch.no_grad():
        layer.weight.copy_(torch.arange(15.0).view(5, 3))
        layer.bias.copy_(-torch.arange(15.0).view(5, 3))
    labels = label_map(2, 5, 8, 8, seed=3)
    x = torch.randn(2, 3, 4, 4)
    out = layer(x, labels)
    classes = F.interpolate(labels, size=(4, 4), mode="nearest").argmax(1)  # (2, 4, 4)
    gamma = layer.weight[classes].permute(0, 3, 1, 2)
    beta = layer.bias[classes].permute(0, 3, 1, 2)
    torch.testing.assert_close(out, x * gamma + beta)
    assert sum(p.numel() for p in layer.parameters()) == 2 * 5 * 3


def test_clade_rejects_index_encoding_and_noise_3d(compose_train) -> None:
    with pytest.raises(ValueError, match="label_encoding=onehot"):
        CLADE(3, 5, identity_norm, label_encoding="index")
    for overrides, match in [
        (["modulation=clade", "modulation.label_encoding=index"], "label_encoding=onehot"),
        (["model=oasis", "modulation=clade"], "noise_3d"),
        (["model=oasis", "modulation.label_encoding=index"], "label_encoding=onehot"),
    ]:
        cfg = compose_train("scale=smoke", *overrides)
        with pytest.raises(InstantiationException) as error:
            builders.build_generator(OmegaConf.to_container(cfg, resolve=True))
        # What `spadelab train` prints: one line naming the setting.
        message = describe_error(error.value)
        assert match in message and "\n" not in message, message


def test_intra_class_positions_are_centroid_offsets_per_region() -> None:
    # Two regions of class 1 (columns 0-1 and 4-5) separated by class 0 (columns 2-3).
    classes = torch.tensor([[1, 1, 0, 0, 1, 1]] * 3).unsqueeze(0)  # (1, 3, 6)
    positions = intra_class_positions(classes)
    assert positions.shape == (1, 2, 3, 6)
    rows, cols = positions[0]
    # Rows: centroid row 1 in every region, offsets -1, 0, 1 normalized by 1.
    torch.testing.assert_close(rows[:, 0], torch.tensor([-1.0, 0.0, 1.0]), atol=1e-4, rtol=0)
    # Columns: each two-column region has offsets -0.5, 0.5, normalized to -1, 1, separately.
    expected = torch.tensor([-1.0, 1.0, -1.0, 1.0, -1.0, 1.0])
    torch.testing.assert_close(cols[0], expected, atol=1e-4, rtol=0)


def test_clade_icpe_uses_the_position_inside_a_region(label_map) -> None:
    torch.manual_seed(0)
    layer = CLADE(4, 3, identity_norm, positional_encoding=True)
    nn.init.normal_(layer.dist_conv_w.weight)
    nn.init.normal_(layer.bias)
    labels = torch.zeros(1, 3, 8, 8)
    labels[:, 1] = 1  # one region: without ICPE every pixel gets the same gamma and beta
    out = layer(torch.ones(1, 4, 8, 8), labels)
    assert out[0, 0].std() > 0
    plain = CLADE(4, 3, identity_norm)
    assert plain(torch.ones(1, 4, 8, 8), labels)[0, 0].std() == 0


def test_oasis_generator_noise_changes_the_image(compose_train, label_map) -> None:
    cfg = OmegaConf.to_container(
        compose_train("scale=smoke", "model=oasis", "norm=instance"), resolve=True
    )
    net = builders.build_generator(cfg).eval()
    assert isinstance(net, OASISGenerator) and net.input_kind.value == "noise"
    # Every SPADE layer sees the label map plus the 64 noise channels.
    spade = next(m for m in net.modules() if isinstance(m, SPADE))
    assert spade.mlp_shared[0].in_channels == net.semantic_nc + 64
    labels = label_map(2, net.semantic_nc, 32, 32)
    z = torch.randn(2, 64)
    with torch.no_grad():
        torch.testing.assert_close(net(labels, z), net(labels, z))
        assert not torch.allclose(net(labels, z), net(labels, z + 1))
        assert net(labels).shape == (2, 3, 32, 32)


def test_oasis_discriminator_segments_every_pixel() -> None:
    net = OASISDiscriminator(semantic_nc=5, ndf=2, num_res_blocks=6)
    image = torch.randn(2, 3, 64, 64, requires_grad=True)
    logits = net(image)
    assert logits.shape == (2, 6, 64, 64)  # 5 classes + "fake"
    logits[:, 2].sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="divisible by 64"):
        net(torch.randn(1, 3, 32, 32))
    assert OASISDiscriminator(5, ndf=2, num_res_blocks=3)(torch.randn(1, 3, 8, 8)).shape[-1] == 8
    with pytest.raises(ValueError, match="num_res_blocks"):
        OASISDiscriminator(5, num_res_blocks=1)


def test_crn_cascade_starts_at_first_size(label_map) -> None:
    norm = make_norm_layer(lambda **kw: CLADE(**kw), lambda c: nn.InstanceNorm2d(c), label_nc=4)
    net = CRNGenerator(4, (32, 64), norm, ngf=2, widths=(4, 4, 2, 1), first_size=4)
    assert (net.sh, net.sw) == (4, 8) and len(net.refine) == 4
    assert net(label_map(2, 4, 32, 64)).shape == (2, 3, 32, 64)
    # A smaller image drops the coarsest modules, keeping the fine widths.
    small = CRNGenerator(4, (16, 16), norm, ngf=2, widths=(4, 4, 2, 1), first_size=4)
    assert [m.conv_1.out_channels for m in small.refine] == [8, 4, 2]
    with pytest.raises(ValueError, match="first_size"):
        CRNGenerator(4, (24, 24), norm, first_size=5)
    with pytest.raises(ValueError, match="add widths"):
        CRNGenerator(4, (256, 256), norm, widths=(1, 1), first_size=4)

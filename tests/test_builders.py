"""``builders.image_size`` (from a config, before any data exists) is the datamodule's own."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from spadelab import builders


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["data.crop_size=32"], (32, 32)),
        (["data.preprocess_mode=fixed", "data.aspect_ratio=2.0", "data.crop_size=64"], (32, 64)),
        (["data.preprocess_mode=scale_width_and_crop", "data.crop_size=32"], (32, 32)),
    ],
)
def test_image_size_from_config_is_the_datamodules(
    compose_train, overrides: list[str], expected: tuple[int, int]
) -> None:
    cfg = compose_train("scale=smoke", *overrides)
    data = OmegaConf.to_container(cfg.data, resolve=True)
    assert builders.image_size(data) == expected
    assert instantiate(cfg.data).image_size == expected

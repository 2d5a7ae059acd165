from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from spadelab.data.labels import LabelSpec
from spadelab.metrics.segmentation import (
    CITYSCAPES_LABEL_TO_TRAIN_ID,
    ConfusionMatrix,
    TorchScriptSegmenter,
    available_label_mappings,
    cityscapes_to_train_ids,
    get_label_mapping,
    predict_labels,
)

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.script.*:FutureWarning")


def test_confusion_matrix_hand_computed_with_ignore() -> None:
    # 3 classes, ignore 255. Rows = target, columns = prediction.
    target = torch.tensor([[[0, 0, 1, 1], [2, 2, 255, 255]]])
    pred = torch.tensor([[[0, 1, 1, 1], [2, 0, 2, 0]]])
    cm = ConfusionMatrix(3, ignore_index=255)
    cm.update(pred, target)
    expected = torch.tensor([[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    assert torch.equal(cm.matrix, expected)
    s = cm.compute()
    # IoU0 = 1/(2+2-1) = 1/3, IoU1 = 2/(2+3-2) = 2/3, IoU2 = 1/(2+1-1) = 1/2
    assert s["per_class_iou"] == pytest.approx([100 / 3, 200 / 3, 50.0])
    assert s["miou"] == pytest.approx(100 * (1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert s["accuracy"] == pytest.approx(100 * 4 / 6)  # the 2 ignored pixels do not count
    assert s["num_classes_present"] == 3


def test_absent_class_excluded_but_false_positive_class_counts_zero() -> None:
    # class 3 never appears anywhere -> excluded; class 2 only predicted -> IoU 0 counts.
    target = torch.tensor([[[0, 0, 1, 1]]])
    pred = torch.tensor([[[0, 0, 1, 2]]])
    cm = ConfusionMatrix(4)
    cm.update(pred, target)
    s = cm.compute()
    assert s["per_class_iou"][3] is None
    assert s["per_class_iou"][2] == 0.0
    assert s["num_classes_present"] == 3
    assert s["miou"] == pytest.approx(100 * (1.0 + 0.5 + 0.0) / 3)
    assert s["accuracy"] == pytest.approx(75.0)


def test_dataset_level_not_per_image_average() -> None:
    cm = ConfusionMatrix(2)
    t1, p1 = torch.tensor([[[0, 0, 0, 1]]]), torch.tensor([[[0, 0, 0, 0]]])
    t2, p2 = torch.tensor([[[1, 1]]]), torch.tensor([[[1, 1]]])
    cm.update(p1, t1)
    cm.update(p2, t2)
    # one matrix: [[3,0],[1,2]] -> IoU0 = 3/4, IoU1 = 2/3
    assert cm.compute()["miou"] == pytest.approx(100 * (0.75 + 2 / 3) / 2)
    per_image = []
    for p, t in ((p1, t1), (p2, t2)):
        single = ConfusionMatrix(2)
        single.update(p, t)
        per_image.append(single.compute()["miou"])
    assert sum(per_image) / 2 != pytest.approx(cm.compute()["miou"])
    cm.reset()
    assert int(cm.matrix.sum()) == 0


def test_confusion_matrix_errors() -> None:
    cm = ConfusionMatrix(3, ignore_index=255)
    with pytest.raises(ValueError, match="prediction holds class values \\[3\\]"):
        cm.update(torch.tensor([[3]]), torch.tensor([[0]]))
    with pytest.raises(ValueError, match="target holds class values \\[7\\]"):
        cm.update(torch.tensor([[0]]), torch.tensor([[7]]))
    with pytest.raises(ValueError, match="shape"):
        cm.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 3, dtype=torch.long))
    cm.update(torch.tensor([[0]]), torch.tensor([[255]]))
    with pytest.raises(ValueError, match="no pixels to score"):
        cm.compute()


def test_cityscapes_mapping_table() -> None:
    assert len(CITYSCAPES_LABEL_TO_TRAIN_ID) == 35
    assert set(CITYSCAPES_LABEL_TO_TRAIN_ID) == set(range(-1, 34))
    train = {k: v for k, v in CITYSCAPES_LABEL_TO_TRAIN_ID.items() if v != 255}
    assert sorted(train.values()) == list(range(19))
    assert sorted(train) == [
        7,
        8,
        11,
        12,
        13,
        17,
        19,
        20,
        21,
        22,
        23,
        24,
        25,
        26,
        27,
        28,
        31,
        32,
        33,
    ]
    assert train[7] == 0 and train[26] == 13 and train[33] == 18 and train[23] == 10
    ids = torch.tensor([[-1, 0, 6, 7, 8, 26, 33, 34, 35, 255]])
    assert cityscapes_to_train_ids(ids).tolist() == [[255, 255, 255, 0, 1, 13, 18, 255, 255, 255]]
    assert cityscapes_to_train_ids(ids).dtype == torch.int64


def test_label_mapping_registry() -> None:
    assert {"identity", "cityscapes_train_ids"} <= set(available_label_mappings())
    with pytest.raises(ValueError, match="eval_mapping='nope' is unknown"):
        get_label_mapping("nope", LabelSpec(3))
    # COCO-Stuff: 182 classes + don't-care 182, ignored even without eval_ignore_index.
    coco = get_label_mapping("identity", LabelSpec(182, contain_dontcare_label=True))
    assert (coco.num_classes, coco.ignore_index) == (182, 182)
    # don't-care is folded into a different eval_ignore_index
    m = get_label_mapping("identity", LabelSpec(4, True, eval_ignore_index=255))
    assert m(torch.tensor([0, 3, 4])).tolist() == [0, 3, 255]
    # ADE20K: 151 values, 0 ignored
    ade = get_label_mapping("identity", LabelSpec(151, eval_ignore_index=0))
    assert (ade.num_classes, ade.ignore_index) == (151, 0)
    city = get_label_mapping("cityscapes_train_ids", LabelSpec(35, contain_dontcare_label=True))
    assert (city.num_classes, city.ignore_index) == (19, 255)
    assert city(torch.tensor([7, 35])).tolist() == [0, 255]
    with pytest.raises(ValueError, match="cityscapes_train_ids"):
        get_label_mapping("cityscapes_train_ids", LabelSpec(19))


class _TinySeg(nn.Module):
    def __init__(self, classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, classes, 3, padding=1)
        self.pool = nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(x))


@pytest.fixture()
def scripted(tmp_path: Path) -> tuple[Path, nn.Module]:
    torch.manual_seed(0)
    net = _TinySeg(5).eval()
    path = tmp_path / "seg.pt"
    torch.jit.script(net).save(str(path))
    return path, net


def test_torchscript_round_trip(scripted: tuple[Path, nn.Module]) -> None:
    path, net = scripted
    seg = TorchScriptSegmenter(str(path), num_classes=5)
    images = torch.rand(2, 3, 8, 12) * 2 - 1
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = net(((images + 1) / 2 - mean) / std)
    out = seg(images)
    assert out.shape == (2, 5, 4, 6)
    torch.testing.assert_close(out, expected)
    # 0..255 range without normalisation, resized input
    seg255 = TorchScriptSegmenter(
        path, 5, mean=None, std=None, input_range="0_255", input_size=(4, 4)
    )
    with torch.no_grad():
        scaled = torch.nn.functional.interpolate(
            (images + 1) * 127.5, size=(4, 4), mode="bilinear", align_corners=False
        )
        torch.testing.assert_close(seg255(images), net(scaled))
    # labels come back at the label size
    assert predict_labels(seg, images, (8, 12)).shape == (2, 8, 12)


def test_torchscript_label_offset(scripted: tuple[Path, nn.Module]) -> None:
    path, _ = scripted
    plain = TorchScriptSegmenter(path, 5)
    shifted = TorchScriptSegmenter(path, 5, label_offset=1)
    assert shifted.out_channels == 6
    images = torch.rand(3, 3, 8, 8) * 2 - 1
    p0 = predict_labels(plain, images, (8, 8))
    p1 = predict_labels(shifted, images, (16, 16))  # bilinear upsampling keeps channel 0 lowest
    assert int(p1.min()) >= 1
    assert torch.equal(predict_labels(shifted, images, (8, 8)), p0 + 1)


def test_torchscript_errors(scripted: tuple[Path, nn.Module], tmp_path: Path) -> None:
    path, net = scripted
    with pytest.raises(ValueError, match="eval.segmenter.path is not set"):
        TorchScriptSegmenter(None, 5)
    with pytest.raises(FileNotFoundError, match="eval.segmenter.path=.*missing.pt"):
        TorchScriptSegmenter(tmp_path / "missing.pt", 5)
    state = tmp_path / "state.pt"
    torch.save(net.state_dict(), state)
    with pytest.raises(ValueError, match="is not a TorchScript file"):
        TorchScriptSegmenter(state, 5)
    junk = tmp_path / "junk.pt"
    junk.write_text("not a model")
    with pytest.raises(ValueError, match="is not a TorchScript file"):
        TorchScriptSegmenter(junk, 5)
    wrong = TorchScriptSegmenter(path, num_classes=7)
    with pytest.raises(ValueError, match="eval.segmenter.num_classes=7"):
        wrong(torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match="input_range"):
        TorchScriptSegmenter(path, 5, input_range="0_2")  # type: ignore[arg-type]
    assert not math.isnan(float(TorchScriptSegmenter(path, 5)(torch.zeros(1, 3, 4, 4)).sum()))

"""Table 5's ResNet-50 as Table 3's Mask R-CNN backbone: a smoke classification run, exported, loads into
mmdet's ResNet-50 of the same method with every conv weight (PWS's alpha included) matched, and the backbone
computes what the classifier computed: the same feature maps at every stage (PWS: stages 1-3, the fourth
without Table 5's output LayerNorm)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from detection_stack import require_detection_stack

require_detection_stack()

from pws.classify import run  # noqa: E402
from pws.engine.checkpoints import latest_checkpoint, mmengine_checkpoints  # noqa: E402
from pws.engine.compose import compose_config  # noqa: E402
from pws.models.resnet50 import resnet50  # noqa: E402
from pws.nn.factory import NormMethod  # noqa: E402
from pws.transfer.backbone import export_backbone, mmdet_resnet50  # noqa: E402

TINY_RESNET50 = [
    "model=resnet50", "data=synthetic_imagenet", "data.num_classes=4", "data.num_train=16", "data.num_val=8",
    "data.batch_size=8",
    "scale.classify.epochs=1", "train.max_steps_per_epoch=1", "wandb.mode=disabled",
]  # fmt: skip


def _run(tmp_path: Path, method: str) -> Path:
    cfg = compose_config("classify", [*TINY_RESNET50, f"norm={method}", f"data.root={tmp_path / 'data'}"])
    run_dir = tmp_path / method
    assert run(cfg, run_dir)["status"] == "finished"
    return run_dir


@pytest.mark.parametrize(("method", "unmapped"), [
    ("pws", {"net.layer4.2.out_norm.weight", "net.layer4.2.out_norm.bias"}),
    ("gn", set()),
])  # fmt: skip
def test_a_classification_resnet50_loads_as_the_mmdet_backbone(tmp_path: Path, method: str, unmapped) -> None:
    run_dir = _run(tmp_path, method)
    exported = export_backbone(run_dir, tmp_path / "backbone.pth")
    assert set(exported.unmapped) == {"net.fc.weight", "net.fc.bias", *unmapped}

    backbone = mmdet_resnet50({"method": method})
    saved = torch.load(exported.path, map_location="cpu")
    backbone.load_state_dict(saved["state_dict"], strict=True)  # every tensor of mmdet's ResNet-50 given

    with mmengine_checkpoints():
        trained = torch.load(latest_checkpoint(run_dir), map_location="cpu")["state_dict"]
    loaded = backbone.state_dict()
    convs = [k for k in trained if ".conv" in k or k.startswith("net.conv1") or "downsample.0" in k]
    assert len(convs) >= 53 * (3 if method == "pws" else 1)  # 53 convs (weight, bias and alpha for PWS)
    for key in convs:
        assert torch.equal(loaded[key.removeprefix("net.")], trained[key]), key
    if method == "pws":
        assert any(k.endswith(".alpha") for k in saved["state_dict"])
    assert sum(k.startswith("net.bn1.") for k in trained) == 2  # the stem's norm (PWS: Table 5's input LN)
    for key in (k for k in trained if k.startswith("net.bn1.")):
        assert torch.equal(loaded[f"{backbone.norm1_name}.{key.removeprefix('net.bn1.')}"], trained[key]), key

    classifier = resnet50(NormMethod(method), num_classes=4)
    classifier.load_state_dict({k.removeprefix("net."): v for k, v in trained.items()}, strict=True)
    classifier.eval()
    backbone.eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        stages = backbone(x)
        h = classifier.maxpool(classifier.relu(classifier.bn1(classifier.conv1(x))))
        expected = []
        for layer in (classifier.layer1, classifier.layer2, classifier.layer3, classifier.layer4):
            h = layer(h)
            expected.append(h)
    same = 3 if method == "pws" else 4  # PWS's last stage ends with Table 5's output LN, the backbone's not
    for i in range(same):
        torch.testing.assert_close(stages[i], expected[i], rtol=1e-5, atol=1e-5, msg=f"stage {i + 1}")
    if method == "pws":
        assert not torch.allclose(stages[3], expected[3], atol=1e-3)

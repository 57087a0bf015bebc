"""Table 5's ResNet-50 as Table 3's Mask R-CNN backbone: a smoke classification run, exported, loads into
mmdet's ResNet-50 of the same method with every conv weight (PWS's alpha included) matched."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from detection_stack import require_detection_stack
from hydra import compose, initialize_config_dir

require_detection_stack()

from pws.classify import run  # noqa: E402
from pws.engine.checkpoints import latest_checkpoint, mmengine_checkpoints  # noqa: E402
from pws.engine.schema import CONFIG_DIR  # noqa: E402
from pws.transfer.backbone import export_backbone, mmdet_resnet50  # noqa: E402

TINY_RESNET50 = [
    "model=resnet50", "data=synthetic_imagenet", "data.num_classes=4", "data.num_train=16", "data.num_val=8",
    "data.batch_size=8",
    "scale.classify.epochs=1", "train.max_steps_per_epoch=1", "wandb.mode=disabled",
]  # fmt: skip


def _run(tmp_path: Path, method: str) -> Path:
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("classify", [*TINY_RESNET50, f"norm={method}", f"data.root={tmp_path / 'data'}"])
    run_dir = tmp_path / method
    assert run(cfg, run_dir)["status"] == "finished"
    return run_dir


@pytest.mark.parametrize(("method", "unmapped"), [
    ("pws", {"net.bn1.weight", "net.bn1.bias", "net.layer4.2.out_norm.weight", "net.layer4.2.out_norm.bias"}),
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

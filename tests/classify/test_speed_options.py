"""The engine's speed options on real tiny runs: ``train.fused_pws`` (the same training as without it, the
checkpoints interchangeable), ``train.compile`` (handed to mmengine's Runner), both validated for both apps;
and ``data.on_device`` (CIFAR's training set and its crop + flip on the run's device)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torchvision.transforms.functional as TF

from pws.classify.config import make_plan
from pws.classify.on_device import crop_flip, normalize, raw_training_set
from pws.engine.compose import compose_config
from pws.engine.errors import ConfigError
from pws.nn.fused import fusion_of

from .conftest import compose_cfg, read_json, tiny

CIFAR = ("plain_c", "synthetic_cifar", "pws")


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "epoch_1.pth", map_location="cpu", weights_only=False)["state_dict"]


def test_fused_pws_trains_as_the_per_layer_path_and_its_checkpoint_loads_without_it(run_tiny, tmp_path):
    per_layer = run_tiny(tiny(*CIFAR), tmp_path / "per_layer")
    fused = run_tiny(tiny(*CIFAR, "train.fused_pws=true"), tmp_path / "fused")
    assert per_layer["status"] == fused["status"] == "finished"
    assert (per_layer["fused_pws"], fused["fused_pws"]) == (False, True)
    assert fused["plan"]["fused_pws"] is True and fused["compile"] is None
    (log,) = (tmp_path / "fused").glob("*/*.log")
    assert "PWS layers standardized in one segmented op" in log.read_text()  # the hook ran on the model
    a, b = _weights(tmp_path / "per_layer"), _weights(tmp_path / "fused")
    assert a.keys() == b.keys()  # the same state_dict keys: no fusion state in the checkpoint
    for key in a:  # one op per layer or one segmented op: rounded otherwise (2.2e-6 at most on one thread)
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-5, msg=key)
    for key in ("train_loss", "train_error"):
        assert math.isclose(fused["history"][0][key], per_layer["history"][0][key], rel_tol=1e-5), key
    assert math.isclose(fused["test_loss"], per_layer["test_loss"], rel_tol=1e-5)

    # the fused run's checkpoint in a network without the option (strict) and back: the same outputs
    from pws.classify.model import Classifier
    from pws.nn import fuse_standardization

    def classifier() -> Classifier:
        torch.manual_seed(0)
        return Classifier("plain_c", {"method": "pws", "gamma": 1e-3}, num_classes=10, width=0.125).eval()

    plain, fusedc = classifier(), fuse_standardization(classifier())
    assert fusion_of(fusedc) is not None and fusion_of(plain) is None
    plain.load_state_dict(b, strict=True)
    fusedc.load_state_dict(a, strict=True)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(fusedc(x), plain(x), rtol=1e-4, atol=1e-5)


def test_compile_mode_reaches_the_runner(run_tiny, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The mode is mmengine's Runner ``compile`` entry, compiled where the Runner compiles (``train_step``,
    after wrapping); the compilation itself is left out here (minutes on a CPU) and run on a GPU by
    bench/gpu_checks.sh."""
    from mmengine.runner import Runner

    seen: list[object] = []
    monkeypatch.setattr(Runner, "_maybe_compile",
                        lambda self, target: seen.append((target, self.cfg.get("compile"))))
    record = run_tiny(tiny(*CIFAR, "train.compile=reduce-overhead"), tmp_path / "compiled")
    assert record["status"] == "finished" and record["compile"] == "reduce-overhead"
    assert seen == [("train_step", {"mode": "reduce-overhead"})]
    seen.clear()
    run_tiny(tiny(*CIFAR), tmp_path / "eager")
    assert seen == [("train_step", None)]  # eager: no compile entry, the Runner compiles nothing


def _compose_detect(overrides: list[str]):
    return compose_config("detect", overrides)


@pytest.mark.parametrize(("override", "words"), [
    ("train.fused_pws=maybe", "train.fused_pws must be true or false"),
    ("train.compile=fast", "train.compile must be null (eager) or one of default, reduce-overhead"),
    ("train.compile=true", "train.compile must be a non-empty string"),
])  # fmt: skip
def test_speed_options_are_validated_by_both_apps(override: str, words: str) -> None:
    from pws.detect.app import DETECT

    with pytest.raises(ConfigError, match="invalid configuration") as info:
        make_plan(compose_cfg([override]), world_size=1)
    assert words in str(info.value)
    with pytest.raises(ConfigError) as info:
        DETECT.plan(_compose_detect([override]), 1)
    assert words in str(info.value)


def test_fusion_and_compile_exclude_each_other_and_detection_takes_the_same_keys() -> None:
    from pws.detect.app import DETECT

    both = ["train.fused_pws=true", "train.compile=default"]
    with pytest.raises(ConfigError, match=r"train\.fused_pws=true is for eager mode"):
        make_plan(compose_cfg(both), world_size=1)
    with pytest.raises(ConfigError, match=r"train\.fused_pws=true is for eager mode"):
        DETECT.plan(_compose_detect(both), 1)
    plan = DETECT.plan(_compose_detect(["train.fused_pws=true"]), 1)
    assert (plan.fused_pws, plan.compile) == (True, None)
    plan = DETECT.plan(_compose_detect(["train.compile=max-autotune"]), 1)
    assert (plan.fused_pws, plan.compile) == (False, "max-autotune")


# ---------------------------------------------------------------------------------------- data.on_device


def _positions(b: int, h: int = 8, w: int = 8) -> torch.Tensor:
    """Images whose pixels say where they are: value 1 + row * w + col (never 0, the padding's value)."""
    grid = 1 + torch.arange(h * w).view(1, 1, h, w)
    return grid.expand(b, 3, h, w).clone()


def test_crop_flip_is_the_cpu_pipelines_crop_and_flip() -> None:
    """Each output is torchvision's pad (zeros) + crop at the drawn offset, flipped when drawn: the CPU
    pipeline's ``RandomCrop(32, padding=4)`` + ``RandomHorizontalFlip()``, with its distribution (offsets
    uniform over 0..8, flips with probability 1/2)."""
    images = torch.randint(1, 256, (4096, 3, 32, 32), dtype=torch.uint8)
    out, top, left, flipped = crop_flip(images, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    for i in range(0, 4096, 97):
        want = TF.crop(TF.pad(images[i], [4]), int(top[i]), int(left[i]), 32, 32)
        if flipped[i]:
            want = TF.hflip(want)
        assert torch.equal(out[i], want), i
    # padding: zeros exactly where the crop leaves the image (images have no zero pixel)
    rows = top[:, None] + torch.arange(32) - 4
    cols = left[:, None] + torch.arange(32) - 4
    inside = ((rows >= 0) & (rows < 32))[:, :, None] & ((cols >= 0) & (cols < 32))[:, None, :]
    inside = torch.where(flipped[:, None, None], inside.flip(2), inside)
    assert torch.equal(out[:, 0] == 0, ~inside)
    # the distribution: every offset, uniform; half the images flipped (4096 draws, ~5 sigma bounds)
    for offsets in (top, left):
        counts = torch.bincount(offsets, minlength=9)
        assert counts.numel() == 9 and counts.min() > 4096 / 9 - 5 * 21 and counts.max() < 4096 / 9 + 5 * 21
    assert abs(flipped.float().mean().item() - 0.5) < 5 * 0.5 / 64


def test_crop_flip_deterministic_under_the_seed_and_a_flip_is_a_flip() -> None:
    images = _positions(64)
    a = crop_flip(images, generator=torch.Generator().manual_seed(3))
    b = crop_flip(images, generator=torch.Generator().manual_seed(3))
    c = crop_flip(images, generator=torch.Generator().manual_seed(4))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])
    out, top, left, flipped = crop_flip(images, padding=0, generator=torch.Generator().manual_seed(1))
    assert int(top.max()) == int(left.max()) == 0 and flipped.any() and not flipped.all()
    assert torch.equal(out[flipped], images[flipped].flip(3)) and torch.equal(out[~flipped], images[~flipped])


def test_on_device_batches_are_the_cpu_pipelines(data_root: Path) -> None:
    """Without augmentation the device path gives the CPU pipeline's tensors (ToTensor + Normalize), image
    for image, from the raw uint8 training set (a Subset included: data.train_size)."""
    from pws.classify.datasets import splits

    options = {"name": "synthetic_cifar", "root": str(data_root / "synthetic" / "cifar"), "num_train": 40,
               "num_test": 20, "train_augment": False, "train_size": 24}  # fmt: skip
    train, _, _ = splits(**options)
    images, labels = raw_training_set(train)
    assert images.shape == (24, 3, 32, 32) and images.dtype == torch.uint8 and labels.shape == (24,)
    got = normalize(images)
    for i in range(len(train)):
        x, y = train[i]
        torch.testing.assert_close(got[i], x, rtol=0, atol=1e-6)
        assert int(labels[i]) == y


def test_tiny_run_on_device_trains(run_tiny, tmp_path: Path) -> None:
    record = run_tiny(tiny(*CIFAR, "data.on_device=true", "scale.classify.epochs=2"), tmp_path / "dev")
    assert record["status"] == "finished", record.get("error")
    assert record["plan"]["on_device"] is True
    assert record["train_fps"] > 0  # the throughput hook counts the images of a batch of indices
    losses = [e["train_loss"] for e in read_json(tmp_path / "dev" / "metrics.json")["history"]]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    assert record["top1_error"] == record["history"][-1]["top1_error"]
    again = run_tiny(tiny(*CIFAR, "data.on_device=true", "scale.classify.epochs=2"), tmp_path / "dev2")
    assert again["history"] == record["history"]  # the seed decides: every loss and error again


def test_on_device_is_for_cifar_only() -> None:
    with pytest.raises(ConfigError, match=r"data\.on_device=true is for cifar10, synthetic_cifar"):
        make_plan(compose_cfg(["data=digits", "+data.on_device=true"]), world_size=1)

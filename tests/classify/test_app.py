"""The classification app: configs compose, the plan has the paper's values, tiny runs of every
experiment-like config, config validation messages, the command line (run directory, sweeps, errors).

(Resume, preemption, divergence, locks, skip/force and DDP are the engine's: tests/engine.)
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
from hydra.errors import HydraException

from pws.classify import make_plan, run
from pws.engine.errors import ConfigError
from pws.engine.schedule import StepSchedule, shorten_schedule
from pws.engine.schema import SGD

from .conftest import compose_cfg, read_json, tiny

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
CLASSIFY_DATA = ("cifar10", "imagenet", "digits", "synthetic_cifar", "synthetic_imagenet")
CLASSIFY_MODELS = ("plain_c", "resnet_cifar", "resnet50")


def classify_choices() -> dict[str, list[str]]:
    """Every option of every group the app uses (the folders are shared with the detection app)."""
    from pws.data.classification import DATASETS
    from pws.models.classifiers import CLASSIFIERS

    def names(group: str) -> list[str]:
        return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))

    def is_step(s: str) -> bool:
        return "\nname: step" in (CONFIG_DIR / "schedule" / f"{s}.yaml").read_text()

    return {
        "model": [m for m in names("model") if m in CLASSIFIERS],
        "norm": names("norm"),
        "data": [d for d in names("data") if d in DATASETS],
        "optim": [o for o in names("optim") if o.startswith("sgd") and o != "sgd_detect"],
        "schedule": [s for s in names("schedule") if is_step(s)],
        "scale": names("scale"),
    }


def pairwise_cover(choices: dict[str, list[str]]) -> list[dict[str, str]]:
    """A small set of full combinations in which every pair of options of two groups occurs (greedy)."""
    groups = list(choices)
    pairs = list(itertools.combinations(groups, 2))
    uncovered = {((g1, a), (g2, b)) for g1, g2 in pairs for a in choices[g1] for b in choices[g2]}
    candidates = [dict(zip(groups, combo, strict=True)) for combo in itertools.product(*choices.values())]

    def covers(c: dict[str, str]) -> set[tuple[tuple[str, str], tuple[str, str]]]:
        return {((g1, c[g1]), (g2, c[g2])) for g1, g2 in pairs}

    chosen = []
    while uncovered:
        best = max(candidates, key=lambda c: len(covers(c) & uncovered))
        chosen.append(best)
        uncovered -= covers(best)
    return chosen


def test_the_groups_hold_the_expected_options() -> None:
    c = classify_choices()
    assert set(c["model"]) == set(CLASSIFY_MODELS)
    assert set(c["norm"]) >= {"none", "bn", "gn", "in", "ln", "sn", "wn", "pws"}
    assert set(c["data"]) == set(CLASSIFY_DATA)
    assert {"sgd", "sgd_imagenet"} <= set(c["optim"])
    assert {"cifar_200e", "imagenet_100e"} <= set(c["schedule"])
    assert set(c["scale"]) == {"smoke", "full"}


def test_every_combination_of_groups_composes_and_validates() -> None:
    """Every pair of options of any two groups, in full combinations (the groups interact only pairwise:
    through the scale's interpolations into model and data), composes and passes validation."""
    choices = classify_choices()
    combos = pairwise_cover(choices)
    assert len(combos) < math.prod(len(v) for v in choices.values())
    for combo in combos:
        cfg = compose_cfg([f"{g}={v}" for g, v in combo.items()] + ["train.device=cpu"])
        plan = make_plan(cfg, world_size=1)
        assert (plan.model, plan.data, plan.method.method, plan.scale) == (
            combo["model"], combo["data"], combo["norm"], combo["scale"])


def test_full_scale_is_the_papers_setting() -> None:
    cifar = make_plan(compose_cfg(["scale=full", "data=cifar10", "model=plain_c", "norm=pws",
                                   "train.device=cpu"]), world_size=1)  # fmt: skip
    assert cifar.schedule == StepSchedule(200, [100, 150, 180], 0.1)
    assert cifar.sgd == SGD(0.1, 0.9, 5e-4, False) and cifar.batch_size == 128
    assert cifar.method.options["gamma"] == 1e-3 and cifar.augment and cifar.ema_decay is None
    assert cifar.model_kwargs["width"] == 1.0
    res = make_plan(compose_cfg(["scale=full", "data=cifar10", "model=resnet_cifar", "train.device=cpu"]),
                    world_size=1)  # fmt: skip
    assert res.model_kwargs["units_per_stage"] == 6
    imagenet = make_plan(compose_cfg(["scale=full", "data=imagenet", "model=resnet50", "optim=sgd_imagenet",
                                      "schedule=imagenet_100e", "norm.gamma=1e-4", "train.device=cpu"]),
                         world_size=1)  # fmt: skip
    assert (imagenet.schedule.epochs, imagenet.schedule.milestones) == (100, [30, 60, 90])
    assert imagenet.sgd == SGD(0.025, 0.9, 1e-4, False)
    assert imagenet.batch_size == 64
    assert imagenet.data_kwargs["crop_size"] == 224 and imagenet.data_kwargs["resize_size"] == 256
    assert imagenet.method.options["gamma"] == 1e-4
    lrs = [imagenet.schedule.lr_at(imagenet.sgd.lr, e) for e in (0, 29, 30, 60, 99)]
    assert lrs == pytest.approx([0.025, 0.025, 2.5e-3, 2.5e-4, 2.5e-5])
    authors = make_plan(compose_cfg(["scale=full", "data=cifar10", "ema.enabled=true", "norm.alpha_init=data",
                                     "train.device=cpu"]), world_size=1)  # fmt: skip
    assert authors.ema_decay == 0.997 and authors.method.options["alpha_init"] == "data"


def test_smoke_shortens_the_schedule_by_the_engines_rule() -> None:
    plan = make_plan(compose_cfg(["scale=smoke"]), world_size=1)
    assert plan.device == "cpu" and plan.scale == "smoke"
    assert plan.schedule == StepSchedule(10, [5, 8, 9], 0.1) and plan.sgd.lr == 0.01 and plan.batch_size == 32
    assert (plan.schedule.epochs, plan.schedule.milestones) == shorten_schedule(200, [100, 150, 180], 10)
    two = make_plan(compose_cfg(["scale=smoke", "scale.classify.epochs=2"]), world_size=1)
    assert (two.schedule.epochs, two.schedule.milestones) == (2, [1])


def test_the_optimizer_and_schedule_the_app_gives_mmengine() -> None:
    """SGD with the plan's LR, momentum and weight decay, alpha without weight decay, the step schedule,
    and the EMA hook only when asked for."""
    from pws.classify.app import CLASSIFY

    plan = make_plan(compose_cfg(["scale=smoke", "norm=pws"]), world_size=1)
    mm = CLASSIFY.mmengine_config(plan, {"num_classes": 10}, world_size=1)
    optimizer = mm["optim_wrapper"]["optimizer"]
    assert (optimizer["type"], optimizer["lr"], optimizer["momentum"], optimizer["weight_decay"],
            optimizer["nesterov"]) == ("SGD", 0.01, 0.9, 5e-4, False)  # fmt: skip
    assert mm["optim_wrapper"]["paramwise_cfg"] == {"custom_keys": {".alpha": {"decay_mult": 0.0}}}
    (steps,) = mm["param_scheduler"]
    assert (steps["type"], steps["milestones"], steps["gamma"], steps["by_epoch"]) == (
        "MultiStepLR", [5, 8, 9], 0.1, True)
    assert mm["train_cfg"]["max_epochs"] == 10
    assert not any(h.get("type") == "EMAHook" for h in mm.get("custom_hooks", []))


def test_table_cells_compose() -> None:
    """Cells of Tables 4 and 5 (experiments/) covering every row and every column, at both scales, compose
    and validate with the values the cells ask for (rows and columns add their overrides independently)."""
    from pws.paper import experiments

    for name in ("table4", "table5"):
        table = experiments.load_table(name)
        for scale in ("smoke", "full"):
            cells = table.cells(scale)
            rows, columns = {c.row for c in cells}, {c.column for c in cells}
            chosen = []
            for cell in cells:
                if cell.row in rows or cell.column in columns:
                    chosen.append(cell)
                    rows.discard(cell.row)
                    columns.discard(cell.column)
            assert not rows and not columns
            for cell in chosen:
                plan = make_plan(compose_cfg([*cell.overrides, "train.device=cpu"]), world_size=1)
                assert plan.scale == scale
                for override in cell.overrides:
                    key, _, value = override.partition("=")
                    if key == "optim.lr":
                        assert plan.sgd.lr == float(value)
                    elif key == "norm.gamma":
                        assert plan.method.options["gamma"] == float(value)
                    elif key == "norm":
                        assert plan.method.method == value
                    elif key in ("model", "data"):
                        assert getattr(plan, key) == value


# ------------------------------------------------------------------------------------------------ tiny runs

EXPERIMENT_LIKE = [
    # (model, data, norm, extra overrides): every model, every data set the tests can have, every method
    ("plain_c", "digits", "pws", []),
    ("plain_c", "synthetic_cifar", "none", []),
    ("resnet_cifar", "synthetic_cifar", "bn", []),
    ("resnet_cifar", "digits", "gn", ["ema.enabled=true"]),
    ("plain_c", "digits", "in", []),
    ("plain_c", "synthetic_cifar", "ln", []),
    ("resnet_cifar", "digits", "sn", []),
    ("plain_c", "digits", "wn", []),
    ("resnet50", "synthetic_imagenet", "pws",
     ["optim=sgd_imagenet", "schedule=imagenet_100e", "norm.gamma=1e-4", "norm.alpha_init=data"]),
    ("resnet50", "digits", "bn", ["optim=sgd_imagenet", "schedule=imagenet_100e"]),
]


TEST_IMAGES = {"digits": 32, "synthetic_cifar": 20, "synthetic_imagenet": 8}  # conftest.TINY_DATA's


@pytest.mark.parametrize("case", EXPERIMENT_LIKE, ids=[f"{m}-{d}-{n}" for m, d, n, _ in EXPERIMENT_LIKE])
def test_tiny_run_leaves_config_metrics_and_checkpoint(run_tiny, tmp_path: Path, case) -> None:
    model, data, norm, extra = case
    overrides = [*tiny(model, data, norm), "seed=3", "table=table4", "row=pws", "cell=plain/lr0.1/pws",
                 *extra]  # fmt: skip
    record = run_tiny(overrides, tmp_path / "run")
    assert record["status"] == "finished", record.get("error")
    on_disk = read_json(tmp_path / "run" / "metrics.json")
    for key in ("status", "top1_error", "top5_error", "test_loss", "history", "train_fps", "wall_time_s",
                "scale", "seed", "table", "cell", "method", "model", "data", "overrides", "git_commit",
                "versions", "plan"):  # fmt: skip
        assert key in on_disk, key
    assert on_disk["status"] == "finished" and on_disk["task"] == "classify"
    assert on_disk["top5_error"] <= on_disk["top1_error"]
    for key in ("top1_error", "top5_error"):  # a percentage of the test images: a whole number of them
        wrong = on_disk[key] * TEST_IMAGES[data] / 100
        assert 0 <= round(wrong) <= TEST_IMAGES[data] and wrong == pytest.approx(round(wrong)), key
    assert (on_disk["scale"], on_disk["seed"], on_disk["method"], on_disk["model"], on_disk["data"]) == (
        "smoke", 3, norm, model, data)
    assert (on_disk["table"], on_disk["row"], on_disk["cell"]) == ("table4", "pws", "plain/lr0.1/pws")
    assert on_disk["overrides"][1:] == overrides  # after the data_root the fixture adds
    assert "torch" in on_disk["versions"]
    (entry,) = on_disk["history"]
    assert entry["epoch"] == 1 and entry["iter"] == 2 and math.isfinite(entry["train_loss"])
    assert entry["top1_error"] == on_disk["top1_error"] and 0.0 <= entry["train_error"] <= 100.0
    assert on_disk["wall_time_s"] > 0
    assert (tmp_path / "run" / "epoch_1.pth").is_file()
    resolved = (tmp_path / "run" / "config.yaml").read_text()
    assert "${" not in resolved and f"name: {model}" in resolved
    # the record's config holds the values the run used, not the interpolations that gave them
    assert "${" not in json.dumps(on_disk["config"])
    assert on_disk["config"]["optim"]["lr"] == on_disk["plan"]["lr"]


# ------------------------------------------------------------------------------------------ invalid values

@pytest.mark.parametrize(("override", "words"), [
    ("optim.lr=-0.1", "optim.lr must be > 0"),
    ("optim.lr=0", "optim.lr must be > 0"),
    ("norm.gamma=-1e-3", "gamma must be a finite number >= 0"),
    ("norm.gamma=nan", "gamma must be a finite number >= 0"),
    ("optim.momentum=1.5", "optim.momentum must be"),
    ("optim.weight_decay=-1", "optim.weight_decay must be >= 0"),
    ("data.batch_size=0", "data.batch_size must be >= 1"),
    ("data.batch_size=abc", "data.batch_size must be an integer"),
    ("schedule.epochs=0", "schedule.epochs must be >= 1"),
    ("schedule.milestones=[150,100]", "strictly increasing"),
    ("schedule.factor=2", "schedule.factor must be"),
    ("scale.classify.epochs=0", "scale.classify.epochs must be >= 1"),
    ("seed=-1", "seed must be >= 0"),
    ("seed=4294967296", "seed must be <= 4294967295"),
    ("train.device=tpu", "train.device must be"),
    ("+model.depth=3", "does not take depth"),
    ("ema.decay=1.0", "ema.decay must be"),
    ("wandb.mode=sometimes", "wandb.mode must be one of"),
])  # fmt: skip
def test_invalid_values_fail_before_any_work(tmp_path: Path, override: str, words: str) -> None:
    cfg = compose_cfg([override])
    with pytest.raises(ConfigError, match="invalid configuration") as info:
        run(cfg, tmp_path / "run", [override])
    assert words in str(info.value) and info.value.exit_code == 2
    assert not list((tmp_path / "run").glob("*.pth"))
    record = read_json(tmp_path / "run" / "metrics.json")
    assert record["status"] == "failed" and words in record["error"]


def test_all_problems_are_listed_in_one_message() -> None:
    with pytest.raises(ConfigError) as info:
        make_plan(compose_cfg(["optim.lr=-1", "norm.gamma=-1", "data.batch_size=0"]), world_size=1)
    message = str(info.value)
    assert message.startswith("invalid configuration (3 problem(s)):")
    assert "optim.lr" in message and "gamma" in message and "data.batch_size" in message


def test_batch_must_split_across_ranks() -> None:
    with pytest.raises(ConfigError, match=r"data\.batch_size=63 is the total batch.* 2 processes"):
        make_plan(compose_cfg(["data.batch_size=63"]), world_size=2)


def test_hydra_errors_are_hydra_exceptions() -> None:
    with pytest.raises(HydraException):
        compose_cfg(["model=vgg19"])


# ----------------------------------------------------------------------------------------- command line


def test_app_invalid_value_one_message_exit_2(app_main, tmp_path: Path) -> None:
    code, _, err = app_main([f"runs_root={tmp_path}", "optim.lr=-1"])
    assert code == 2
    assert "pws.classify: error: invalid configuration" in err
    assert "optim.lr must be > 0, got -1" in err and "Traceback" not in err


def test_app_unknown_choice_or_key_is_refused(app_main, tmp_path: Path) -> None:
    code, _, err = app_main([f"runs_root={tmp_path}", "norm=batchnorm"])
    assert code == 1  # Hydra's own error: it lists the options that exist
    assert "norm/batchnorm" in err and "pws" in err
    code, _, err = app_main([f"runs_root={tmp_path}", "optim.learning_rate=0.1"])
    assert code == 2 and "optim.learning_rate is not a key of any classify config" in err
    code, _, err = app_main([f"runs_root={tmp_path}", "+optim.learning_rate=0.1"])
    assert code == 2 and "optim.learning_rate is not a key of any classify config" in err


def test_app_run_directory_is_deterministic(app_main, tmp_path: Path, data_root: Path) -> None:
    """The same command twice: the same run directory (the second call skips the finished run)."""
    args = [f"runs_root={tmp_path}", f"data_root={data_root}", *tiny(), "seed=1"]
    code, out, err = app_main(args)
    assert code == 0, err
    assert out.strip().splitlines()[-1].startswith("pws.classify: finished: top1_error=")
    run_dir = (tmp_path / "classify" / "smoke" / "digits" / "plain_c" / "pws"
               / "data.batch_size=8,data.test_size=32,model.width=0.125,scale.classify.epochs=1,seed=1,"
                 "train.max_steps_per_epoch=2")  # fmt: skip
    assert read_json(run_dir / "metrics.json")["status"] == "finished"
    assert (run_dir / "config.yaml").is_file() and (run_dir / ".hydra" / "overrides.yaml").is_file()
    before = (run_dir / "metrics.json").read_bytes()
    assert app_main(list(reversed(args)))[0] == 0  # override order does not matter
    assert (run_dir / "metrics.json").read_bytes() == before


def test_app_sweep_goes_on_after_a_divergence(app_main, tmp_path: Path, data_root: Path) -> None:
    """A Hydra sweep in one process: the diverged job is recorded and the next one runs (and logs into its
    own run directory)."""
    args = ["-m", f"runs_root={tmp_path}", f"data_root={data_root}", *tiny("plain_c", "digits", "none"),
            "optim.lr=1e6,0.01"]  # fmt: skip
    code, _, err = app_main(args)
    assert code == 0, err
    records = {r["plan"]["lr"]: (path, r) for path in tmp_path.rglob("metrics.json")
               for r in [read_json(path)]}  # fmt: skip
    assert records[1e6][1]["status"] == "diverged" and math.isnan(records[1e6][1]["top1_error"])
    assert records[0.01][1]["status"] == "finished"
    for path, _ in records.values():
        assert (path.parent / "classify.log").is_file()  # Hydra's job log
        (log,) = path.parent.glob("*/*.log")  # mmengine's, of this run's work_dir
        assert f"work_dir = '{path.parent}'" in log.read_text()


def test_missing_data_names_the_path_and_how_to_get_it(app_main, tmp_path: Path) -> None:
    nowhere = tmp_path / "nowhere"
    code, _, err = app_main(["scale=full", "data=cifar10", f"data.root={nowhere}", "train.device=cpu",
                             f"runs_root={tmp_path / 'runs'}"])  # fmt: skip
    assert code == 1
    assert str(nowhere) in err and "How to get it" in err and "Traceback" not in err
    (path,) = (tmp_path / "runs").rglob("metrics.json")
    record = read_json(path)
    assert record["status"] == "failed" and str(nowhere) in record["error"]


def test_wandb_offline_run_lands_in_the_run_directory(run_tiny, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "elsewhere"))
    record = run_tiny([*tiny(), "table=table4", "row=pws", "cell=plain/lr0.1/pws"],
                      tmp_path / "run")  # fmt: skip
    assert record["status"] == "finished", record.get("error")
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("run-*.wandb"))
    from pws.records.wandb_run import read_offline_summary

    summary = read_offline_summary(runs[0])
    assert summary["status"] == "finished" and summary["top1_error"] == record["top1_error"]
    assert summary["paper/top1_error"] == 6.16  # Table 4, plain net, LR 0.1, PWS
    assert summary["delta/top1_error"] == pytest.approx(record["top1_error"] - 6.16)

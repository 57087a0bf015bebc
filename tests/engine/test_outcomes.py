"""What a run ends as, through the command line of every app: diverged (exit 0, metrics NaN), an invalid
value (exit 2, one message, metrics.json failed), an unknown key (exit 2), missing data (exit 1)."""

from __future__ import annotations

import math
import signal
from pathlib import Path

import pytest

from pws.engine.hooks.preemption import SIGNALS
from pws.engine.schema import SEED_MAX

from .conftest import PROBES, Case, probe, read_json


def test_a_divergence_is_recorded_as_nan_and_exits_0(app: Case, monkeypatch, capsys, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = app.cli_args(run_dir, *app.divergent, f"{app.epochs_key}=1")
    code, out, err = app.cli(monkeypatch, capsys, args)
    assert code == 0, err
    assert f"pws.{app.name}: diverged" in out
    record = read_json(run_dir / "metrics.json")  # NaN written as the JSON token NaN
    assert record["status"] == "diverged" and "non-finite training loss" in record["diverged_at"]
    for name in app.app.metric_names(app.app.plan(app.config(*app.divergent), 1)):
        assert math.isnan(record[name]), name
    assert f'"{app.metric}": NaN' in (run_dir / "metrics.json").read_text()
    assert not (run_dir / ".lock").exists()
    # the same command again: a diverged run is done, it is skipped
    code, out, _ = app.cli(monkeypatch, capsys, args)
    assert code == 0 and f"pws.{app.name}: diverged" in out


def test_two_runs_in_one_process_each_log_into_their_own_directory(
        app: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """mmengine names its logger, message hub and visualizer after the second the Runner starts; two runs
    started within one second (a Hydra sweep in one process) must still write apart. (The second is made
    the same for both here.)"""
    import time
    import types

    import mmengine.runner.runner as mm_runner

    same_second = types.SimpleNamespace(**{k: getattr(time, k) for k in dir(time) if not k.startswith("__")})
    same_second.localtime = lambda *_: time.localtime(1_764_547_200)
    monkeypatch.setattr(mm_runner, "time", same_second)
    handlers = {name: signal.getsignal(getattr(signal, name)) for name in SIGNALS}
    for name in ("a", "b"):
        record = app.execute(tmp_path / name, *app.divergent, f"{app.epochs_key}=1", hooks=[probe(name)])
        assert record["status"] == "diverged"
        # the preemption handlers are put back (training raised)
        assert {n: signal.getsignal(getattr(signal, n)) for n in SIGNALS} == handlers
    for name in ("a", "b"):
        logs = list((tmp_path / name).rglob("*.log"))
        assert len(logs) == 1, (name, logs)
        text = logs[0].read_text()
        assert "Epoch(train)" in text and str(tmp_path / name) in text
        (scalars,) = (tmp_path / name).rglob("vis_data/scalars.json")  # the visualizer's, too
        assert len(scalars.read_text().splitlines()) == len(PROBES[name])  # one line per logged iteration
    assert len(PROBES["a"]) == len(PROBES["b"]) >= 1


def _error_block(err: str, app: str) -> list[str]:
    """The lines of stderr from ``pws.<app>: error:`` on (asserting that they are the whole message)."""
    start = err.find(f"pws.{app}: error: ")
    assert start >= 0, err
    assert "Traceback" not in err, err
    return err[start:].rstrip("\n").splitlines()


@pytest.mark.parametrize(("override", "words"), [
    ("optim.lr=-1", "optim.lr must be > 0"),
    ("seed=-1", "seed must be >= 0, got -1"),
    (f"seed={SEED_MAX + 1}", f"seed must be <= {SEED_MAX}, got {SEED_MAX + 1}"),
])  # fmt: skip
def test_an_invalid_value_exits_2_with_one_message(app: Case, monkeypatch, capsys, tmp_path: Path,
                                                    override: str, words: str) -> None:  # fmt: skip
    run_dir = tmp_path / "run"
    code, _, err = app.cli(monkeypatch, capsys, app.cli_args(run_dir, override))
    assert code == 2, err
    block = _error_block(err, app.name)
    assert block[0].startswith(f"pws.{app.name}: error: invalid configuration"), block
    assert all(line.startswith("  - ") for line in block[1:]) and len(block) >= 2, block
    assert any(words in line for line in block), block
    record = read_json(run_dir / "metrics.json")
    assert record["status"] == "failed" and words in record["error"]
    assert not list(run_dir.glob("*.pth")) and not (run_dir / ".lock").exists()


def test_every_invalid_value_is_named_in_one_message(app: Case, monkeypatch, capsys, tmp_path: Path) -> None:
    """One validator in every app: three bad values (optimizer, batch, norm) are three lines of one error."""
    bad = ("optim.lr=-1", "data.batch_size=0", "norm.gamma=-1")
    code, _, err = app.cli(monkeypatch, capsys, app.cli_args(tmp_path / "run", *bad))
    assert code == 2, err
    block = _error_block(err, app.name)
    assert block[0] == f"pws.{app.name}: error: invalid configuration (3 problem(s)):", block
    assert sorted(line.split()[1] for line in block[1:]) == ["data.batch_size", "norm:", "optim.lr"], block


@pytest.mark.parametrize("spelling", ["+optim.lrr=0.1", "optim.lrr=0.1", "++optim.lrr=0.1"])
def test_an_unknown_key_exits_2_naming_it(app: Case, monkeypatch, capsys, tmp_path: Path,
                                          spelling: str) -> None:  # fmt: skip
    """One message and exit 2 however the key is spelt (without ``+``, Hydra would refuse it in its words)."""
    code, _, err = app.cli(monkeypatch, capsys, app.cli_args(tmp_path / "run", spelling))
    assert code == 2, err
    assert _error_block(err, app.name) == [
        f"pws.{app.name}: error: invalid configuration (1 problem(s)):",
        f"  - optim.lrr is not a key of any {app.name} config (did you mean optim.lr?)",
    ]
    assert "HYDRA_FULL_ERROR" not in err and not (tmp_path / "run").exists()


def test_missing_data_exits_1_naming_the_path(app: Case, monkeypatch, capsys, tmp_path: Path) -> None:
    nowhere = tmp_path / "nowhere"
    run_dir = tmp_path / "run"
    missing = [o.format(nowhere=nowhere) for o in app.missing_data]
    args = [f"data_root={app.data_root}", "wandb.mode=disabled", *missing, f"hydra.run.dir={run_dir}"]
    code, _, err = app.cli(monkeypatch, capsys, args)
    assert code == 1, err
    block = _error_block(err, app.name)
    assert str(nowhere) in "\n".join(block)
    record = read_json(run_dir / "metrics.json")
    assert record["status"] == "failed" and str(nowhere) in record["error"]
    assert not (run_dir / ".lock").exists()


def test_a_run_whose_wandb_cannot_start_finishes_without_it(
        app: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    """wandb is the dashboard, metrics.json the record: a wandb.init that raises (a requeued job's run id
    still held by its first attempt's service) leaves the run going, with a warning naming the error."""
    from pws.engine import lifecycle

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("run ID abc is in use")

    monkeypatch.setattr(lifecycle, "Tracker", refuse)
    with caplog.at_level("WARNING", logger="pws.engine"):
        record = app.execute(tmp_path / "run", f"{app.epochs_key}=1")
    assert record["status"] == "finished", record.get("error")
    assert "wandb could not start this run (RuntimeError: run ID abc is in use)" in caplog.text

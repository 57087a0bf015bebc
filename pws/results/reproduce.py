"""``make reproduce-tableN``: run a table's grid as Hydra multiruns, then collect and render it.

Every cell is one Hydra multirun over the seeds, with deterministic run directories::

    python -m <app> -m <cell overrides> table=<table> cell=<cell> seed=0,1,2 [force=true] \\
        hydra/launcher=<launcher> hydra.sweep.dir=<runs>/<scale>/<table>/<cell> hydra.sweep.subdir=seed${seed}

so a run of seed k of a cell always lands in ``runs/<scale>/<table>/<cell>/seed<k>``. Rerunning skips
what is done: seeds whose run already finished or diverged are left out of the command (and the apps skip
a finished run dir themselves), so a broken sweep resumes where it stopped; ``--force`` passes
``force=true`` and reruns everything. A finished run whose saved overrides differ from the cell's (the
table's definition or ``--override`` changed since) is stale: it is rerun with ``force=true``.

Two kinds of seed are never launched silently: one whose ``metrics.json`` cannot be read (garbage, binary
bytes; the app would refuse it) is reported, naming the file, and skipped unless ``--force`` (the app then
moves the file aside and runs the seed again); one whose run directory a live process holds (its lock) is
reported as running and skipped (a second process would be refused the run directory). A seed whose record
says running but whose process is gone (killed, preempted) is launched: the app resumes it.

Cells run one after the other (their seeds in parallel under the joblib and SLURM launchers);
``--cell-jobs N`` launches N cells at once (the default for SLURM is all of them: each multirun then only
waits for its array job).

``--detach`` (SLURM): each cell's multirun submits its jobs and returns at once (their ids in
``<sweep dir>/slurm_jobs.json``, :mod:`pws.records.slurm_jobs`); the driver renders what has finished and
ends. The same command later shows each seed pending or running (``squeue``), finished or failed (its
record), submits only the seeds that are neither queued, running nor done, and renders again.

A cell whose config is that of a finished run of another table, a sweep or a run by hand (the same
resolved config, :mod:`pws.results.shared`) uses that run instead of training it again: the seed is not
launched, a reference in its seed directory names the run, and the table counts the run for the cell,
saying so; a run of that config still running is referenced and waited for (the seed is not launched;
the table says running until it ends). ``--force`` trains every seed anyway.

A row that starts from another table's run (``backbone_from``: Table 3's Mask R-CNN from Table 5's
ResNet-50) gets ``model.backbone_checkpoint=<file>`` at full scale, exported from that run before the
launch; a cell whose run is missing waits (not launched; its line names the run and the command that
makes it) while the other cells run (see :mod:`pws.results.backbones`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from pws.paper.experiments import REPO_ROOT, Cell, Table, load_table
from pws.records.metrics_file import DONE_STATUSES, atomic_write_bytes
from pws.records.slurm_jobs import queued
from pws.results.backbones import BackboneSource, ensure_exported, resolve
from pws.results.collect import LOCK_FILE, Run, load_run, override_dict, parse_override
from pws.results.render import runs_dir
from pws.results.report import render_table
from pws.results.shared import REFERENCE_FILE, RunIndex, describe, find_shared, write_reference

# LAUNCHER=<name> -> hydra/launcher=<config in configs/hydra/launcher/>
LAUNCHERS = {
    "local": "local",                        # Hydra's basic launcher: one job after the other
    "joblib": "pws_joblib",                  # parallel jobs on this machine
    "slurm": "slurm",                        # submitit on a SLURM cluster
    "submitit_local": "pws_submitit_local",  # submitit's local executor (the SLURM path minus the cluster)
}
DETACHED_LAUNCHER = "pws_slurm_detached"  # --detach: the SLURM launcher that submits and returns


@dataclass
class Launch:
    """One cell's multirun."""

    cell: Cell
    sweep_dir: Path
    seeds: list[int]              # the seeds this launch runs
    done: list[int]               # seeds already finished or diverged (skipped)
    stale: list[int] = field(default_factory=list)  # done, but with other overrides: rerun (force=true)
    unreadable: dict[int, str] = field(default_factory=dict)  # seed -> its metrics.json: not run (no force)
    busy: dict[int, str] = field(default_factory=dict)  # seed -> why: a live process holds its run dir
    queued: dict[int, str] = field(default_factory=dict)  # seed -> its SLURM job's state (not launched)
    detach: bool = False  # submitted without waiting for its jobs (the SLURM launcher, --detach)
    backbone: BackboneSource | None = None  # where its pretrained backbone comes from (None: no such row)
    shared: dict[int, Run] = field(default_factory=dict)  # seed -> the finished run of the same config used
    waits: dict[int, Run] = field(default_factory=dict)   # seed -> the running run of the same config
    fingerprints: dict[int, str] = field(default_factory=dict)  # of the shared and waiting seeds
    command: list[str] = field(default_factory=list)
    returncode: int | None = None
    error: str | None = None
    wall_s: float = 0.0

    @property
    def skipped(self) -> bool:
        return not self.seeds

    def skip_notes(self) -> list[str]:
        """The seeds left out for a reason other than being done, each with the reason."""
        notes = [f"seed {s} not run: {why} (--force moves it aside and runs the seed again)"
                 for s, why in self.unreadable.items()]
        notes += [f"seed {s} not run: {why}" for s, why in self.busy.items()]
        notes += [f"seed {s} not trained: the same config's run is used, {describe(r)}"
                  for s, r in self.shared.items()]
        notes += [f"seed {s} not run: the same config is running, {describe(r)}; it is used when it ends"
                  for s, r in self.waits.items()]
        if self.waiting:
            notes.append(f"not run: {self.backbone.note}")  # type: ignore[union-attr]
        return notes

    @property
    def waiting(self) -> bool:
        """Whether the cell waits for the run its backbone comes from (not there yet)."""
        return self.backbone is not None and self.backbone.kind == "missing"


def _same_overrides(run: Run, wanted: list[str]) -> bool:
    """Whether a finished run was made with ``wanted`` (its saved Hydra overrides, or its record's;
    True when neither is saved). Values compare by meaning (1.0e-3 == 0.001)."""
    if not run.overrides:
        return True
    return override_dict(run.overrides) == override_dict(wanted)


def merge_overrides(overrides: list[str]) -> list[str]:
    """Later overrides of the same key replace earlier ones (``--override`` over a cell's own)."""
    last = {parse_override(o)[0]: i for i, o in enumerate(overrides)}
    return [o for i, o in enumerate(overrides) if last[parse_override(o)[0]] == i]


def plan(
    table: Table,
    scale: str,
    seeds: list[int],
    *,
    grid: str | None = None,
    runs_root: str | os.PathLike[str] = "runs",
    launcher: str = "local",
    force: bool = False,
    extra_overrides: list[str] | None = None,
    cells: list[str] | None = None,
    backbone_seed: int = 0,
    detach: bool = False,
) -> list[Launch]:
    """The multiruns that reproduce ``table`` at ``scale`` (nothing is run, nothing exported);
    ``backbone_seed``: the seed of the run a ``backbone_from`` row starts from; ``detach``: the SLURM
    launcher submits and returns (see the module). A seed whose config is that of a run below
    ``runs_root`` outside the table's own folder is shared (not with ``force``)."""
    if launcher not in LAUNCHERS:
        raise ValueError(f"unknown launcher {launcher!r}; choose one of {', '.join(LAUNCHERS)}")
    if detach and launcher != "slurm":
        raise ValueError(f"detach (jobs submitted, not awaited) needs the slurm launcher, not {launcher!r}")
    hydra_launcher = DETACHED_LAUNCHER if detach else LAUNCHERS[launcher]
    base = runs_dir(runs_root, scale, table.name, grid).resolve()
    index = RunIndex(Path(runs_root), exclude=base)
    launches = []
    for cell in table.cells(scale, grid):
        if cells and cell.id not in cells:
            continue
        sweep_dir = base / cell.id
        overrides = merge_overrides([*cell.overrides, *(extra_overrides or [])])
        backbone = resolve(table, cell, scale, overrides, runs_root, backbone_seed)
        if backbone is not None and backbone.override:
            overrides = [*overrides, backbone.override]
        runs = {s: load_run(sweep_dir / f"seed{s}") for s in seeds}
        busy = {s: f"running: a live process holds its run directory (pid {(r.holder or {}).get('pid')} on "
                   f"{(r.holder or {}).get('host')}, lock {r.path / LOCK_FILE})"
                for s, r in runs.items() if r.live and r.status not in DONE_STATUSES}
        unreadable = {} if force else {s: r.note for s, r in runs.items() if r.status == "unreadable"}
        in_queue = queued(sweep_dir) if launcher == "slurm" else {}
        waiting_jobs = {s: in_queue[str(s)] for s in seeds if str(s) in in_queue and s not in busy}
        done = [] if force else [s for s, r in runs.items() if r.status in DONE_STATUSES]
        stale = [s for s in done if not _same_overrides(runs[s], overrides)]
        done = [s for s in done if s not in stale]
        waiting = backbone is not None and backbone.kind == "missing"
        todo = [s for s in seeds if s not in done and s not in unreadable and s not in busy
                and s not in waiting_jobs and not waiting]
        shared, waits, fps = {}, {}, {}
        for s in [] if force else [s for s in todo if runs[s].status == "incomplete"]:
            run, fp = find_shared(index, cell.app, overrides, s, sweep_dir / f"seed{s}")
            if run is not None and fp is not None:
                (shared if run.status in DONE_STATUSES else waits)[s] = run
                fps[s] = fp
        todo = [s for s in todo if s not in fps]
        cmd = [
            sys.executable, "-m", cell.app, "-m",
            *overrides,
            f"table={table.name}", f"cell={cell.id}",
            "seed=" + ",".join(str(s) for s in todo),
            *(["force=true"] if force or stale else []),
            f"hydra/launcher={hydra_launcher}",
            f"hydra.sweep.dir={sweep_dir}",
            "hydra.sweep.subdir=seed${seed}",
        ]
        launches.append(Launch(cell=cell, sweep_dir=sweep_dir, seeds=todo, done=done, stale=stale,
                               unreadable=unreadable, busy=busy, queued=waiting_jobs, detach=detach,
                               backbone=backbone, command=cmd, shared=shared, waits=waits,
                               fingerprints=fps))
    return launches


def _app_available(app: str) -> bool:
    try:
        return importlib.util.find_spec(app) is not None
    except (ImportError, ValueError):
        return False


def _last_error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if any(w in ln for w in ("Error", "error", "Exception", "Could not", "not found", "failed")):
            return ln[:300]
    return (lines[-1][:300] if lines else "no output")


def execute(launch: Launch, *, scale: str, stream: bool = False, cwd: str | os.PathLike[str] | None = None,
            env: dict[str, str] | None = None) -> Launch:
    """Run one cell's multirun; its output goes to ``<sweep_dir>/launch.log``, its exit status and
    command to ``<sweep_dir>/launch.json`` (the collector reports a failed launch from it)."""
    launch.sweep_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    record = {"table": launch.cell.table, "cell": launch.cell.id, "scale": scale, "seeds": launch.seeds,
              "command": launch.command, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if not _app_available(launch.cell.app):
        launch.returncode = 127
        launch.error = f"app {launch.cell.app} is not available (python -m {launch.cell.app} has no module)"
    else:
        child_env = dict(os.environ if env is None else env)
        child_env.setdefault("HYDRA_FULL_ERROR", "1")
        child_env.setdefault("PYTHONUNBUFFERED", "1")
        log_path = launch.sweep_dir / "launch.log"
        with open(log_path, "a") as log:
            log.write(f"\n$ {' '.join(launch.command)}\n")
            log.flush()
            proc = subprocess.Popen(launch.command, cwd=cwd or REPO_ROOT, env=child_env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            tail: list[str] = []
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                tail.append(line)
                del tail[:-200]
                if stream:
                    sys.stdout.write(line)
            launch.returncode = proc.wait()
        if launch.returncode != 0:
            launch.error = _last_error_line("".join(tail))
    launch.wall_s = time.time() - started
    record.update(returncode=launch.returncode, error=launch.error, wall_s=round(launch.wall_s, 1))
    atomic_write_bytes(launch.sweep_dir / "launch.json", (json.dumps(record, indent=1) + "\n").encode())
    return launch


def _cell_summary(launch: Launch, table: Table) -> str:
    parts = []
    elsewhere = {**launch.shared, **launch.waits}
    listed = [*launch.seeds, *launch.done, *launch.unreadable, *launch.busy, *launch.queued, *elsewhere]
    for s in dict.fromkeys(listed):  # a seed just submitted is also queued
        run = load_run(elsewhere[s].path if s in elsewhere else launch.sweep_dir / f"seed{s}")
        if s in launch.queued and run.status not in DONE_STATUSES:  # SLURM's word: pending, running
            parts.append(f"seed {s}: {launch.queued[s]}")
            continue
        if run.status not in DONE_STATUSES:  # no result: its status, never its last evaluation
            parts.append(f"seed {s}: {run.note}")
            continue
        vals = []
        for m in table.metrics():
            value = run.result(m)
            if value is not None:
                vals.append(f"{m} {value:.{table.decimals}f}")
        tag = " (skipped: done)" if s in launch.done else ""
        tag += f" (the run of {run.table} {run.cell})" if s in elsewhere else ""
        parts.append(f"seed {s}: {run.status}{tag} " + " ".join(vals))
    return "; ".join(parts)


def _earlier_states(launch: Launch) -> str:
    """What the seeds a launch runs were before it (`` (seed 1 was failed)``; empty for new seeds)."""
    runs = {s: load_run(launch.sweep_dir / f"seed{s}") for s in launch.seeds}
    was = [f"seed {s} was {run.status}" for s, run in runs.items() if run.record is not None]
    return f" ({'; '.join(was)})" if was else ""


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_cell_jobs(launcher: str, scale: str, cells: int, cpus: int | None = None) -> int:
    """Cells launched at once unless ``--cell-jobs`` says: all of them under SLURM (each waits for its
    array job); at the smoke scale on this machine one per CPU, a thread each (two small runs side by side
    on one thread each finish sooner than one after the other on two); else one (a GPU run at a time)."""
    if launcher == "slurm":
        return max(1, cells)
    if scale == "smoke" and launcher == "local":
        return max(1, min(cells, usable_cpus() if cpus is None else cpus))
    return 1


def parallel_cells_env(cell_jobs: int, environ: Mapping[str, str] | None = None,
                       cpus: int | None = None) -> dict[str, str]:
    """The environment of cells run ``cell_jobs`` at a time on one machine: each gets an equal share of
    the CPUs this process may use as its thread count (``OMP_NUM_THREADS``, unless the environment sets
    it), so that runs side by side do not each start a thread per core."""
    env = dict(os.environ if environ is None else environ)
    if cpus is None:
        cpus = usable_cpus()
    env.setdefault("OMP_NUM_THREADS", str(max(1, cpus // max(1, cell_jobs))))
    return env


def run_all(launches: list[Launch], table: Table, *, scale: str, cell_jobs: int = 1,
            stream: bool = False, printer=print) -> list[Launch]:
    """Execute the launches (``cell_jobs`` at a time), printing one line per cell."""
    lock = threading.Lock()
    total = len(launches)
    counter = {"n": 0}
    env = parallel_cells_env(cell_jobs) if cell_jobs > 1 else None

    def one(launch: Launch) -> Launch:
        earlier = _earlier_states(launch) if launch.detach else ""
        if not launch.skipped:
            execute(launch, scale=scale, stream=stream and cell_jobs == 1, env=env)
        with lock:
            counter["n"] += 1
            if launch.skipped:
                state = "; ".join(launch.skip_notes()) or "done already"
            elif launch.returncode == 0 and launch.detach:  # its jobs are queued: SLURM's states
                state = f"submitted seeds {launch.seeds} in {launch.wall_s:.0f} s{earlier}"
                in_queue = queued(launch.sweep_dir)
                launch.queued.update({s: in_queue[str(s)] for s in launch.seeds if str(s) in in_queue})
            elif launch.returncode == 0:
                state = f"ran in {launch.wall_s:.0f} s"
                if launch.stale:
                    state += f" (seeds {launch.stale} rerun: made with other overrides)"
                for note in launch.skip_notes():
                    state += f"; {note}"
            else:
                state = (f"FAILED (exit {launch.returncode}: {launch.error}); "
                         f"log {launch.sweep_dir}/launch.log")
            printer(f"[{counter['n']:>{len(str(total))}}/{total}] {launch.cell.id}: {state} — "
                    f"{_cell_summary(launch, table)}")
        return launch

    if cell_jobs <= 1:
        return [one(ln) for ln in launches]
    with ThreadPoolExecutor(max_workers=cell_jobs) as pool:
        return list(pool.map(one, launches))


def reproduce(
    table_name: str,
    *,
    scale: str = "smoke",
    seeds: list[int] | None = None,
    launcher: str = "local",
    force: bool = False,
    grid: str | None = None,
    runs_root: str | os.PathLike[str] = "runs",
    out_root: str | os.PathLike[str] = "results",
    extra_overrides: list[str] | None = None,
    cells: list[str] | None = None,
    cell_jobs: int | None = None,
    dry_run: bool = False,
    stream: bool = False,
    plots: bool = True,
    wandb_mode: str | None = None,
    backbone_seed: int = 0,
    reference: str = "paper",
    detach: bool = False,
    printer=print,
):
    """Run (or resume) the grid of ``table_name`` and render it; returns the report (None on dry run).
    ``detach``: submit the SLURM jobs and render what has finished without waiting (see the module)."""
    table = load_table(table_name)
    seeds = list(seeds if seeds is not None else [0])
    launches = plan(table, scale, seeds, grid=grid, runs_root=runs_root, launcher=launcher, force=force,
                    extra_overrides=extra_overrides, cells=cells, backbone_seed=backbone_seed, detach=detach)
    if cell_jobs is None:
        cell_jobs = default_cell_jobs(launcher, scale, len(launches))
    base = runs_dir(runs_root, scale, table.name, grid)
    what = f"{table.title} at {scale} scale" + (f", reduced grid {grid!r}" if grid else "")
    todo = sum(len(ln.seeds) for ln in launches)
    n_seeds = f"{len(seeds)} seed" + ("s" if len(seeds) != 1 else "")
    n_shared = sum(len(ln.shared) + len(ln.waits) for ln in launches)
    shared = f", {n_shared} from runs of the same config elsewhere" if n_shared else ""
    printer(f"{what}: {len(launches)} cells x {n_seeds}, {todo} runs to do{shared} "
            f"(launcher {launcher}, runs in {base})")
    for ln in launches:
        for note in ln.skip_notes():
            printer(f"  {ln.cell.id}: {note}")
    if dry_run:
        for ln in launches:
            state = " ".join(_shell_quote(a) for a in ln.command)
            if ln.skipped:
                state = ("skip (waits for its backbone)" if ln.waiting else
                         "skip (shared: see above)" if ln.shared or ln.waits else "skip (done)")
            printer(f"  {ln.cell.id}: {state}")
            if ln.backbone is not None:
                printer(f"    backbone: {ln.backbone.note}")
        return None
    for ln in launches:
        share(ln, grid)
    for ln in launches:
        if not ln.skipped and ln.backbone is not None and ln.backbone.kind == "run":
            path, written = ensure_exported(ln.backbone)
            printer(f"  {ln.cell.id}: backbone {path} ({'exported' if written else 'exported already'} "
                    f"from {ln.backbone.run_dir})")
    run_all(launches, table, scale=scale, cell_jobs=cell_jobs, stream=stream, printer=printer)
    out_dir = Path(out_root) / scale
    return render_table(table, base, scale, out_dir, grid=grid, seeds=seeds, plots=plots,
                        wandb_mode=wandb_mode, reference=reference)


def share(launch: Launch, grid: str | None) -> None:
    """Write the references of the launch's shared and waiting seeds; drop those of the seeds it trains
    (their own runs replace them)."""
    for s, run in {**launch.shared, **launch.waits}.items():
        write_reference(launch.sweep_dir / f"seed{s}", run, table=launch.cell.table, grid=grid,
                        cell=launch.cell.id, fp=launch.fingerprints[s])
    for s in launch.seeds:
        (launch.sweep_dir / f"seed{s}" / REFERENCE_FILE).unlink(missing_ok=True)


def _shell_quote(arg: str) -> str:
    return shlex.quote(arg)


def print_report(report, printer=print) -> None:
    """The rendered table, then where everything is."""
    printer("")
    printer(report.paths["md"].read_text())
    printer("Files:")
    for key in ("md", "csv", "tex", "vs_paper_png", "curves_png", "claims"):
        if key in report.paths:
            printer(f"  {key:<13} {report.paths[key]}")
    if report.wandb_dir is not None:
        printer(f"  {'wandb (table)':<13} {report.wandb_dir}   (offline: `wandb sync {report.wandb_dir}`)")
    roots = report.result.runs_root
    if roots:
        printer(f"  {'runs':<13} {', '.join(roots)}   (each run's wandb folder: <run dir>/wandb/)")
    if report.problems:
        printer("")
        printer(f"{len(report.problems)} file(s) could not be read (their runs have no number in the table):")
        for problem in report.problems:
            printer(f"  {problem}")

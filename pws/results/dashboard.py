"""The wandb dashboards as code: one wandb report per paper table, ours beside the paper's numbers.

A report of table ``tableN`` reads the runs of project ``pws-tableN`` (what
:class:`pws.records.wandb_run.Tracker` logs: group = the table row, name = the cell, the config with
``table``/``cell``, the scale as a tag).
It has one section per run column of the table, each a panel grid over that column's runs at one scale,
grouped by row (mean over the seeds, stddev as the band):

* a bar panel per printed column of the table: our ``<metric>`` beside ``paper/<metric>`` (the run summary
  the tracker writes at the end of a run; Table 1's FPS column is ``train_fps`` of the batch-8 runs);
* the training curves per method: ``epoch/train_loss`` and the evaluation after every epoch
  (``val/<name>``, mmengine's name of the metric: ``val/top1_error``, ``val/pascal_voc/mAP`` (a fraction),
  ...) against ``epoch/epoch``, what :class:`pws.engine.hooks.wandb_log.WandbHook` logs.

:func:`dashboard_spec` is the report as plain data (what ``--dry-run`` writes as JSON, with no network);
:func:`build_report` turns it into a ``wandb_workspaces`` report, :func:`main` saves it (network).
``scripts/wandb_dashboard.py`` is the command line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pws.paper import metrics
from pws.paper.experiments import SCALES, TABLES, Table, load_table
from pws.paper.published import paper_value

# History keys of every run (pws.engine.hooks.wandb_log.WandbHook): each epoch's entry of the run record as
# epoch/<name>, each evaluation as val/<mmengine's metric name>, at the same step (the iteration count).
EPOCH_KEY = "epoch/epoch"
TRAIN_LOSS_KEY = "epoch/train_loss"
VAL_PREFIX = "val/"
PAPER_PREFIX = "paper/"  # the paper's number of the run's cell in its summary (pws.records.wandb_run)
GROUP_BY = "Group"  # wandb's run attribute `group` (= the table row)


def project_of(table: str) -> str:
    """The wandb project of a table's runs (as :class:`pws.records.wandb_run.Tracker` names it)."""
    return f"pws-{table}"


def val_key(app: str, metric: str) -> str | None:
    """The history key of ``metric``'s evaluation after each epoch, or None (``train_fps``: summary only)."""
    name = metrics.BY_APP.get(app, {}).get(metric)  # the name its evaluator reports (logged as val/<name>)
    return f"{VAL_PREFIX}{name}" if name else None


def _column_filter(cells: list[str], scale: str) -> str:
    """The runs of ``cells`` at ``scale``: the config's top-level ``cell`` and the run's tag of the scale
    (the tracker's tags are app, scale, model, method; flat strings, unlike the nested config's scale)."""
    listed = ", ".join(repr(c) for c in cells)
    return f"Config('cell') in [{listed}] and Tags() in [{scale!r}]"


def _bar(table: Table, display: Any, cells: list[str]) -> dict[str, Any]:
    metrics = [display.metric]
    if any(paper_value(table.name, c, display.metric) is not None for c in cells):
        metrics.append(f"{PAPER_PREFIX}{display.metric}")
    better = "higher" if display.higher_is_better else "lower"
    return {"type": "BarPlot", "title": f"{display.label}: ours vs paper ({better} is better)",
            "metrics": metrics}


def _curves(table: Table, metrics: list[str]) -> list[dict[str, Any]]:
    out = [{"type": "LinePlot", "title": "training loss per method", "x": EPOCH_KEY, "y": [TRAIN_LOSS_KEY]}]
    for metric in metrics:
        key = val_key(table.app, metric)
        if key is not None:
            out.append({"type": "LinePlot", "title": f"{metric} per method, after each epoch",
                        "x": EPOCH_KEY, "y": [key]})
    return out


def dashboard_spec(table: str | Table, entity: str, project: str | None = None, *, scale: str = "full",
                   grid: str | None = None) -> dict[str, Any]:
    """The report of ``table`` as plain data: title, project, and per run column a heading and a panel grid
    (its run set: filter and grouping; its panels: the metric keys they plot)."""
    t = load_table(table) if isinstance(table, str) else table
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    project = project or project_of(t.name)
    rows, cols, _, _ = t.grid(grid)
    sections = []
    for column in cols:
        cells = [t.cell_id(column, row) for row in rows]
        displays = [d for d in t.display if d.column == column]
        metrics = list(dict.fromkeys([d.metric for d in displays] or [t.metric]))
        label = t.columns[column].get("label", column) if column else t.title
        sections.append({
            "heading": str(label),
            "runset": {"entity": entity, "project": project, "name": f"{label} ({scale})",
                       "filters": _column_filter(cells, scale), "groupby": ["group"]},
            "panels": [*(_bar(t, d, cells) for d in displays), *_curves(t, metrics)],
        })
    where = " ".join(t.setting(scale).split())
    return {
        "table": t.name,
        "entity": entity,
        "project": project,
        "scale": scale,
        "grid": grid,
        "title": f"{t.title} - ours vs paper ({scale})",
        "description": f"Runs of {project} at scale {scale}: {where}",
        "intro": (
            "Bars: our `<metric>` (mean over the seeds of a row, stddev as the error bar) beside the "
            f"paper's number `{PAPER_PREFIX}<metric>`; the summary also holds `delta/<metric>` = ours - "
            f"paper. Curves: `{TRAIN_LOSS_KEY}` and the evaluation after each epoch (`{VAL_PREFIX}<name>`; "
            "detection's are mmdet's fractions, the bars are in %) against the epoch. Runs grouped by the "
            "table row."
        ),
        "groupby": GROUP_BY,
        "sections": sections,
    }


def panel_keys(spec: dict[str, Any]) -> set[str]:
    """Every metric key a panel of ``spec`` names (bars: summary keys; curves: history keys)."""
    keys: set[str] = set()
    for section in spec["sections"]:
        for panel in section["panels"]:
            keys.update(panel.get("metrics", []))
            keys.update(panel.get("y", []))
            if panel.get("x"):
                keys.add(panel["x"])
    return keys


def build_report(spec: dict[str, Any]) -> Any:
    """The ``wandb_workspaces`` report of ``spec``, built without network (``report.save()`` saves it)."""
    import wandb_workspaces.reports.v2 as wr

    blocks: list[Any] = [wr.MarkdownBlock(text=spec["intro"])]
    for section in spec["sections"]:
        rs = section["runset"]
        panels = []
        for p in section["panels"]:
            common = dict(title=p["title"], groupby=spec["groupby"], groupby_aggfunc="mean",
                          groupby_rangefunc="stddev")
            if p["type"] == "BarPlot":
                panels.append(wr.BarPlot(metrics=list(p["metrics"]), orientation="v", **common))
            elif p["type"] == "LinePlot":
                panels.append(wr.LinePlot(x=p["x"], y=list(p["y"]), title_x="epoch", **common))
            else:
                raise ValueError(f"unknown panel type {p['type']!r}")
        blocks += [
            wr.H2(text=section["heading"]),
            wr.PanelGrid(
                runsets=[wr.Runset(entity=rs["entity"], project=rs["project"], name=rs["name"],
                                   filters=rs["filters"], groupby=list(rs["groupby"]))],
                panels=panels,
            ),
        ]
    return wr.Report(entity=spec["entity"], project=spec["project"], title=spec["title"][:128],
                     description=spec["description"], blocks=blocks)


def report_keys(report: Any) -> set[str]:
    """Every metric key the panels of a built report name (what is saved, read back from its panels)."""
    keys: set[str] = set()
    for block in report.blocks:
        for panel in getattr(block, "panels", []) or []:
            keys.update(str(m) for m in getattr(panel, "metrics", []) or [])
            keys.update(str(m) for m in getattr(panel, "y", []) or [])
            if getattr(panel, "x", None):
                keys.add(str(panel.x))
    return keys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="wandb_dashboard.py",
        description="Create the wandb report of a paper table: ours vs paper per printed column, runs "
                    "grouped by row, training curves per method. --dry-run writes the report's "
                    "specification as JSON without network.",
    )
    p.add_argument("tables", nargs="+", help=f"{', '.join(TABLES)} or all")
    p.add_argument("--entity", required=True, help="wandb entity (user or team) owning the projects")
    p.add_argument("--project", help="wandb project of the runs (default pws-<table>; one table only)")
    p.add_argument("--scale", choices=SCALES, default="full", help="the runs shown (default: full)")
    p.add_argument("--grid", help="a reduced grid of the table (its rows and columns only)")
    p.add_argument("--dry-run", action="store_true", help="write the specification as JSON; no network")
    p.add_argument("--out", type=Path, help="with --dry-run: write the JSON here instead of stdout")
    args = p.parse_args(argv)
    tables = list(TABLES) if args.tables == ["all"] else args.tables
    unknown = [t for t in tables if t not in TABLES]
    if unknown:
        p.error(f"unknown table {', '.join(unknown)} (tables: {', '.join(TABLES)} or all)")
    if args.project and len(tables) > 1:
        p.error("--project names the project of one table; give one table with it")
    try:
        specs = [dashboard_spec(t, args.entity, args.project, scale=args.scale, grid=args.grid)
                 for t in tables]
        reports = [build_report(s) for s in specs]  # validates every panel before anything is saved
    except (KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        text = json.dumps(specs[0] if len(specs) == 1 else specs, indent=2) + "\n"
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text)
            print(f"wrote {args.out}", file=sys.stderr)
        else:
            sys.stdout.write(text)
        return 0
    for report in reports:
        report.save()
        print(report.url)
    return 0

"""Render a reproduced table as Markdown, CSV and LaTeX: per cell ours, its interval, the paper's and the
difference.

Markdown and LaTeX lay the table out as the paper does (its rows, its printed columns), each printed
column split into *ours* (mean ± std over seeds), *95% CI* (Student's t over the seeds; unknown with one),
*paper* (or *authors*: the reference) and *Δ* (ours - reference, and whether the reference lies inside the
interval). The CSV is long: one line per printed cell, with the numbers, the status, every seed's value and
where the number comes from (run directories, commits, wandb run ids, the command that reproduces it).
"""

from __future__ import annotations

import csv
import io
import math
import os
from datetime import datetime, timezone
from pathlib import Path

from pws.paper.published import WHOSE
from pws.results.aggregate import CellMetric, TableResult

CSV_FIELDS = [
    "table", "scale", "grid", "row", "row_label", "column", "display", "metric", "cell",
    "ours", "ci", "paper", "delta", "ours_mean", "ours_std", "ci_low", "ci_high", "ci_method",
    "reference_in_ci", "n_seeds", "seeds", "values", "n_finished", "n_diverged", "n_failed", "status",
    "reason", "reference", "reference_source", "run_dirs", "commits", "wandb_ids", "command",
]
CI_HEADER = "95% CI"
INTERVAL_NOTE = (
    "95% CI: Student's t interval of the mean over the seeds that finished (n - 1 degrees of freedom, n "
    "given), `unknown (1 seed)` with one seed: one run says nothing of the spread"
)


def heading_lines(res: TableResult) -> list[str]:
    """The title and the plain statement of what was run (smoke scale is never the paper's setting)."""
    t = res.table
    lines = []
    if res.scale == "smoke":
        lines.append(f"# {t.title} — SMOKE-SCALE reproduction, not the paper's setting")
        lines.append("")
        lines.append(f"**Smoke scale, not the paper's setting.** {t.setting('smoke')}.")
    else:
        lines.append(f"# {t.title} — reproduced at {res.scale} scale")
        lines.append("")
        lines.append(f"**{res.scale.capitalize()} scale.** {t.setting(res.scale)}.")
    if res.grid is not None:
        _, _, extra, note = t.grid(res.grid)
        text = f"**Reduced grid `{res.grid}`**: {note or 'a subset of the table'}"
        text += f" (rows: {', '.join(res.rows)}; columns: {', '.join(c or '-' for c in res.columns)}"
        if extra:
            text += f"; extra overrides: `{' '.join(extra)}`"
        text += ")."
        lines += ["", text]
    metric_bits = []
    for _, d in res.displays:
        bit = f"{d.metric} ({'higher' if d.higher_is_better else 'lower'} is better)"
        if bit not in metric_bits:
            metric_bits.append(bit)
    seeds = ", ".join(str(s) for s in res.seeds) or "none"
    roots = ", ".join(f"`{r}`" for r in res.runs_root) or "-"
    ref = reference_words(res.reference)
    lines += [
        "",
        f"Runs: {roots} · {res.n_runs} runs · seeds {seeds} · commit {', '.join(res.commits) or 'unknown'}"
        f" · app `{t.app}` · rendered {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        f"Metrics: {', '.join(metric_bits)}. Each printed column: ours (mean ± std over seeds when there "
        f"are several); {INTERVAL_NOTE}; {ref}; Δ = ours − {res.reference}, `(inside CI)` / `(outside CI)`: "
        f"whether {WHOSE[res.reference]} number lies inside our interval. NaN: the run diverged (the paper "
        "prints NaN the same way). A dash: no number, with the reason. Where each number comes from (run "
        "directories, commits, wandb run ids, the command that reproduces it): the CSV.",
    ]
    return lines


def reference_words(reference: str) -> str:
    """What the reference column holds, in words."""
    if reference == "authors":
        return ("authors: the number the authors published later (their READMEs) where there is one, else "
                "the paper's (its source per cell in the CSV)")
    return "paper: the paper's number"


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def markdown(res: TableResult) -> str:
    t = res.table
    header = list(t.info_columns)
    for _, d in res.displays:
        header += [f"{d.label}: ours", CI_HEADER, res.reference, "Δ"]
    lines = [*heading_lines(res), ""]
    lines.append("| " + " | ".join(_md_escape(h) for h in header) + " |")
    aligns = [":--"] * len(t.info_columns) + ["--:"] * (len(header) - len(t.info_columns))
    lines.append("| " + " | ".join(aligns) + " |")
    for row in res.rows:
        cells = [str(x) for x in t.rows[row]["info"]]
        for i, _ in res.displays:
            c = res.cell(row, i)
            cells += [c.ours_text, c.interval_text, c.paper_text, c.delta_text]
        lines.append("| " + " | ".join(_md_escape(x) for x in cells) + " |")
    lines.append("")
    return "\n".join(lines)


def _num(x: float | None) -> str:
    if x is None:
        return ""
    return "NaN" if math.isnan(x) else repr(float(x))


def seed_values(c: CellMetric) -> str:
    """Every completed seed's value, ``seed:value`` (``NaN`` for a diverged seed, ``?`` for a run without a
    seed), in seed order: what the claims (:mod:`pws.results.claims`) pair by seed."""
    pairs = [*zip(c.seeds, c.values, strict=True), *((s, math.nan) for s in c.diverged_seeds)]
    pairs.sort(key=lambda sv: (sv[0] is None, sv[0] or 0))
    return " ".join(f"{'?' if s is None else s}:{_num(v)}" for s, v in pairs)


def csv_rows(res: TableResult) -> list[dict[str, str]]:
    out = []
    for row in res.rows:
        for i, d in res.displays:
            c: CellMetric = res.cell(row, i)
            ci, inside = c.interval, c.reference_inside
            out.append({
                "table": res.table.name, "scale": res.scale, "grid": res.grid or "",
                "row": row, "row_label": res.table.row_label(row), "column": d.column,
                "display": d.label, "metric": d.metric, "cell": c.cell,
                "ours": c.ours_text, "ci": c.interval_text, "paper": c.paper_text, "delta": c.delta_text,
                "ours_mean": _num(c.mean), "ours_std": _num(c.std),
                "ci_low": _num(ci.low if ci else None), "ci_high": _num(ci.high if ci else None),
                "ci_method": ci.method if ci else ("unknown (1 seed)" if c.values else ""),
                "reference_in_ci": "" if inside is None else ("yes" if inside else "no"),
                "n_seeds": str(c.n_completed), "seeds": " ".join(str(s) for s in c.seeds),
                "values": seed_values(c),
                "n_finished": str(len(c.values)), "n_diverged": str(len(c.diverged_seeds)),
                "n_failed": str(len(c.failed) + len(c.missing_metric)),
                "status": c.status, "reason": c.reason,
                "reference": c.reference, "reference_source": c.reference_source,
                "run_dirs": " ".join(c.run_dirs), "commits": " ".join(c.commits),
                "wandb_ids": " ".join(c.wandb_ids), "command": c.command,
            })
    return out


def to_csv(res: TableResult) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(csv_rows(res))
    return buf.getvalue()


_TEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def _tex(text: str) -> str:
    s = "".join(_TEX_SPECIAL.get(ch, ch) for ch in str(text))
    return s.replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace("−", "-")


def latex(res: TableResult) -> str:
    t = res.table
    n_info = len(t.info_columns)
    spec = "l" * n_info + "rrrr" * len(res.displays)
    caption = t.title
    if res.scale == "smoke":
        caption += " --- smoke-scale reproduction, not the paper's setting"
    if res.grid:
        caption += f" (reduced grid {res.grid})"
    lines = [
        "% " + " ".join(heading_lines(res)[0].split()),
        "% Requires \\usepackage{booktabs}.",
        "\\begin{table}[t]",
        "\\centering",
        "\\small",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
    ]
    top = [""] * n_info + [f"\\multicolumn{{4}}{{c}}{{{_tex(d.label)}}}" for _, d in res.displays]
    lines.append(" & ".join(top) + " \\\\")
    rules = " ".join(f"\\cmidrule(lr){{{n_info + 1 + 4 * k}-{n_info + 4 + 4 * k}}}"
                     for k in range(len(res.displays)))
    lines.append(rules)
    sub = [_tex(h) for h in t.info_columns] + ["ours", "95\\% CI", res.reference, "$\\Delta$"] * len(
        res.displays)
    lines.append(" & ".join(sub) + " \\\\")
    lines.append("\\midrule")
    for row in res.rows:
        cells = [_tex(x) for x in t.rows[row]["info"]]
        for i, _ in res.displays:
            c = res.cell(row, i)
            ours = c.ours_text if c.ours_text != "-" else "--"
            if ours.startswith("- ("):
                ours = "-- (" + ours[3:]
            cells += [_tex(ours), _tex(c.interval_text), _tex(c.paper_text), _tex(c.delta_text)]
        lines.append(" & ".join(cells) + " \\\\")
    lines += [
        "\\bottomrule",
        "\\end{tabular}",
        f"\\caption{{{_tex(caption)}. Ours (mean $\\pm$ std over seeds), its 95\\% interval (Student's t "
        f"over the seeds; unknown with one), {WHOSE[res.reference]} number and $\\Delta$ = ours $-$ "
        f"{res.reference} (inside/outside CI: whether {WHOSE[res.reference]} number lies in our interval); "
        "NaN: diverged; --: no number, for the reason beside it.}",
        f"\\label{{tab:repro-{t.name}-{res.scale}}}",
        "\\end{table}",
        "",
    ]
    return "\n".join(lines)


def output_stem(table: str, grid: str | None) -> str:
    """``table4`` for the whole table, ``table4_demo`` for its reduced grid ``demo``."""
    return f"{table}_{grid}" if grid else table



def runs_dir(runs_root: str | os.PathLike[str], scale: str, table: str, grid: str | None) -> Path:
    """Where the runs of ``table`` (its reduced ``grid``, if given) at ``scale`` live: the cells below it."""
    return Path(runs_root) / scale / output_stem(table, grid)

def write_all(res: TableResult, out_dir: str | Path, stem: str | None = None) -> dict[str, Path]:
    """Write ``<stem>.md``, ``.csv`` and ``.tex`` into ``out_dir``; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = stem or output_stem(res.table.name, res.grid)
    paths = {
        "md": out_dir / f"{stem}.md",
        "csv": out_dir / f"{stem}.csv",
        "tex": out_dir / f"{stem}.tex",
    }
    paths["md"].write_text(markdown(res))
    paths["csv"].write_text(to_csv(res))
    paths["tex"].write_text(latex(res))
    return paths

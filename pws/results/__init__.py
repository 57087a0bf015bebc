"""The paper's tables reproduced: collection of runs, aggregation, rendering, launchers.

Built on :mod:`pws.paper` (the published numbers and the table definitions) and :mod:`pws.records` (the run
record); nothing below imports this package (``pws.paper < pws.records < pws.results``).

* :mod:`pws.results.collect` — run directories below any folder (``metrics.json`` + ``.hydra/``);
* :mod:`pws.results.tally`, :mod:`pws.results.aggregate` — runs per cell: mean, spread, status;
* :mod:`pws.results.render`, :mod:`pws.results.plots`, :mod:`pws.results.report` — the reproduced table
  as Markdown, CSV, LaTeX, PNG and a wandb Table;
* :mod:`pws.results.reproduce` — ``make reproduce-tableN``: the table's grid as Hydra multiruns;
* :mod:`pws.results.sweep` — ``make sweep-gamma`` / ``sweep-lr``: a sweep table and heatmap.
* :mod:`pws.results.dashboard` — ``make dashboard``: one wandb report per table, ours vs paper.
"""

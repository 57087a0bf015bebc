# pws-repro: `make install`, then `make test`. Every target runs inside .venv.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
TORCH  := torch==2.14.1 torchvision==0.29.1

.PHONY: install test lint bench bench-layers

install:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install $(TORCH)
	$(PIP) install -e ".[dev]"
	PY=$(PY) bash scripts/install_mmcv.sh  # mmcv 2.1.0 with ops (built once, cached), mmengine, mmdet
	bash scripts/slurm_local.sh install || test $$? = 3  # slurm-wlm, munge: tests on a real SLURM (root)

test:
	$(PY) -m pytest -q --durations=15 -n 2 --dist loadgroup --no-loadscope-reorder

lint:
	$(VENV)/bin/ruff check .

# --- The paper's tables: make reproduce-table1..5 [SCALE=smoke|full] [SEEDS=0,1,2]
#     [LAUNCHER=local|joblib|slurm|submitit_local] [FORCE=1] [DETACH=1] [REPRO_ARGS="--cells ... --override k=v"]
#     DETACH=1 (LAUNCHER=slurm): submit the jobs and return; the same command later shows their states,
#     submits what is neither queued, running nor done, and renders what has finished (docs/cluster.md)
SCALE    ?= smoke
SEEDS    ?= 0
LAUNCHER ?= local
FORCE    ?=
DETACH   ?=
REPRO    := $(PY) scripts/reproduce_table.py --scale $(SCALE) --seeds $(SEEDS) --launcher $(LAUNCHER) \
            $(if $(FORCE),--force) $(if $(DETACH),--detach) $(REPRO_ARGS)
SWEEP    := $(PY) scripts/sweep.py --scale $(SCALE) --seeds $(SEEDS) --launcher $(LAUNCHER) \
            $(if $(FORCE),--force) $(if $(Y),--y $(Y)) $(if $(X),--x $(X)) $(SWEEP_ARGS)

.PHONY: reproduce-table1 reproduce-table2 reproduce-table3 reproduce-table4 reproduce-table5 \
        sweep-gamma sweep-lr demo

reproduce-table1:
	$(REPRO) table1
reproduce-table2:
	$(REPRO) table2
reproduce-table3:
	$(REPRO) table3
reproduce-table4:
	$(REPRO) table4
reproduce-table5:
	$(REPRO) table5

# --- Before the cluster: every full-scale cell of a table for a few iterations and one small evaluation
#     (generated stand-ins where the data is not there) -> results/rehearsal/tableN.md and .csv; exit 1 if a
#     cell failed. make rehearse-tableN [LAUNCHER=...] [REHEARSE_ARGS="--cells bs8/pws --data-root DIR --iters 5"]
REHEARSE := $(PY) scripts/reproduce_table.py --scale full --rehearse --launcher $(LAUNCHER) $(REHEARSE_ARGS)

.PHONY: rehearse-table1 rehearse-table2 rehearse-table3 rehearse-table4 rehearse-table5

rehearse-table1:
	$(REHEARSE) table1
rehearse-table2:
	$(REHEARSE) table2
rehearse-table3:
	$(REHEARSE) table3
rehearse-table4:
	$(REHEARSE) table4
rehearse-table5:
	$(REHEARSE) table5

# PWS gamma (rows, default 1e-5 .. 1e-2 and auto = 0.1 sqrt(n_l/2)) x LR (columns); Y=1e-5,auto X=0.05,0.1 to choose.
sweep-gamma:
	$(SWEEP) gamma
# method (rows) x LR (columns); Y=none,bn,pws X=0.05,0.1,0.2 to choose the values.
sweep-lr:
	$(SWEEP) lr

# The first command after `make install`: Table 4 at smoke scale on CPU (a few minutes).
demo:
	$(PY) scripts/reproduce_table.py table4 --scale smoke --grid demo --seeds 0 $(if $(FORCE),--force)

# --- wandb dashboards: one report per table, ours vs paper (pws.results.dashboard)
#     make dashboard TABLE=table4 ENTITY=my-team [SCALE=smoke] [PROJECT=pws-table4] [DRY_RUN=1]
#     (TABLE=all by default; the runs of SCALE=full unless SCALE is given; DRY_RUN=1: JSON, no network)
TABLE   ?= all
ENTITY  ?=
PROJECT ?=
DRY_RUN ?=

.PHONY: dashboard

dashboard:
	@test -n "$(ENTITY)" || { echo "make dashboard: set ENTITY=<wandb entity>" >&2; exit 2; }
	$(PY) scripts/wandb_dashboard.py $(TABLE) --entity $(ENTITY) $(if $(PROJECT),--project $(PROJECT)) \
	    --scale $(if $(filter command line,$(origin SCALE)),$(SCALE),full) $(if $(DRY_RUN),--dry-run)

# --- Benchmarks, not tests: `make bench-layers [BENCH_ARGS="--sizes 32x64 --repeats 11"]`;
#     `make bench` runs every bench/bench_*.py at the paper's sizes (a GPU's work: on 2 CPU cores
#     bench_classify's ResNet-50 alone takes hours). bench/gpu_checks.sh OUTDIR: CUDA tests + benchmarks.
bench-layers:
	$(PY) bench/bench_layers.py $(BENCH_ARGS)

bench:
	set -e; for script in bench/bench_*.py; do $(PY) $$script; done

# --- Diagnostics: Figures 1, 2 and 6 -> results/$(SCALE)/figureN.csv and .png
#     make reproduce-figure1 [SCALE=smoke|full] [FORCE=1] [DIAG_ARGS="--device cuda --max-images 2000"]
#     (figure1 and figure6 share one measurement; FORCE=1 measures again)
DIAG := $(PY) -m pws.diagnostics

.PHONY: reproduce-figure1 reproduce-figure2 reproduce-figure6

reproduce-figure1:
	$(DIAG) figure1 --scale $(SCALE) $(if $(FORCE),--force) $(DIAG_ARGS)
reproduce-figure2:
	$(DIAG) figure2 --scale $(SCALE) $(DIAG_ARGS)
reproduce-figure6:
	$(DIAG) figure6 --scale $(SCALE) $(if $(FORCE),--force) $(DIAG_ARGS)

# Figures 3 and 5: a metric against epochs from the runs' histories -> results/$(SCALE)/figureN.csv and .png.
# Figure 3: the f-measure of SSD during training (runs its grid, experiments/figure3_grid.yaml, first);
# Figure 5: top-5 error of Table 5's runs (runs Table 5's grid first). Figure 4 (CIFAR-10) is Table 4's
# results/$(SCALE)/table4_curves.png.
.PHONY: reproduce-figure3 reproduce-figure5
reproduce-figure3:
	$(REPRO) figure3_grid
	$(PY) -m pws.results.history_figures figure3 --scale $(SCALE) $(FIG_ARGS)
reproduce-figure5:
	$(REPRO) table5
	$(PY) -m pws.results.history_figures figure5 --scale $(SCALE) $(FIG_ARGS)

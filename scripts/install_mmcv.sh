#!/usr/bin/env bash
# Install the mmdetection stack into a Python environment: mmcv 2.1.0 WITH its compiled ops (NMS, RoIAlign,
# ...), then mmengine 0.10.7 and mmdet 3.3.0 (the `detection` extra of pyproject.toml).
#
#   bash scripts/install_mmcv.sh                     # into .venv of this repository (what `make install` runs)
#   PY=/path/to/python bash scripts/install_mmcv.sh  # into another environment (conda, ...)
#   MMCV_WHEEL=/path/to/mmcv-2.1.0-....whl bash scripts/install_mmcv.sh
#                                                    # use a prebuilt wheel (e.g. a CUDA build matching your
#                                                    # torch/CUDA), no build, no cache
#   MMCV_REBUILD=1 bash scripts/install_mmcv.sh      # ignore the cached wheel and build again
#   FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST='8.0;9.0' bash scripts/install_mmcv.sh
#                                                    # a CUDA build on a node without a GPU (a login node):
#                                                    # for the GPUs listed (needs nvcc, CUDA_HOME)
#
# Why a build: PyPI has mmcv 2.1.0 only as source, mmdet 3.3.0 refuses mmcv >= 2.2, and mmcv-lite has no ops.
# The sdist does not build as shipped against torch 2.14 (its setup.py asks for -std=c++17; torch 2.14's
# headers need C++20; no environment variable overrides it). The recipe, measured on 2 cores (about 8 min):
#   pip download --no-deps --no-binary :all: mmcv==2.1.0; patch -std=c++17 -> -std=c++20 in setup.py;
#   setuptools 80.9.0 (mmcv's setup.py imports pkg_resources, gone in setuptools >= 81; torch wants >= 77.0.3,
#   so 80.9.0 is left installed); --no-build-isolation (setup.py imports torch); MMCV_WITH_OPS=1 MAX_JOBS=2;
#   CFLAGS/CXXFLAGS="-O3 -g0 -DNDEBUG -fwrapv" (replaces Python's "-g -O3": 1.4 MB wheel instead of 32 MB,
#   half the build time).
# The wheel is cached in ${XDG_CACHE_HOME:-$HOME/.cache}/pws-repro/wheels/<key>/ with
# <key> = mmcv-<version>_torch-<torch version>_<python tag>_<cpu | cuda<CUDA version>_arch<arch list>>; a
# later install with the same key installs the cached wheel without rebuilding. A CUDA build is wanted when
# torch sees a GPU (or FORCE_CUDA=1) and needs nvcc (CUDA_HOME) matching torch's CUDA; it is compiled for
# TORCH_CUDA_ARCH_LIST, else the visible GPUs. The install check (scripts/mmcv_check.py) then wants the ops
# compiled with CUDA and, on a GPU, nms and roi_align on CUDA tensors: an installed CPU-only build is
# rebuilt (or taken from the cache under its CUDA key).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PY:-$ROOT/.venv/bin/python}"
# Absolute, so that it still names the same interpreter after the build's `cd` into mmcv's sources (the
# Makefile passes the relative .venv/bin/python).
case "$PY" in */*) PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")" ;; esac
MMCV_VERSION="${MMCV_VERSION:-2.1.0}"
MAX_JOBS="${MAX_JOBS:-2}"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/pws-repro/wheels"
PIP=("$PY" -m pip)

log() { printf '[install_mmcv] %s\n' "$*" >&2; }

[ -x "$PY" ] || { log "no python at $PY (run 'make install' or set PY=)"; exit 1; }

# The build environment: setuptools 80.9.0 (has pkg_resources; satisfies torch's >= 77.0.3), wheel, ninja.
"${PIP[@]}" install -q "setuptools==80.9.0" wheel ninja

CHECK="$ROOT/scripts/mmcv_check.py"
mmcv_ok() {  # the installed mmcv has the ops this node needs (CUDA ones where a CUDA build is wanted)
    local why
    why="$("$PY" "$CHECK" check "$MMCV_VERSION" 2>&1)" && return 0
    log "installed mmcv not usable here: ${why##*$'\n'}"
    return 1
}

KEY="$("$PY" "$CHECK" key "$MMCV_VERSION")" || { log "no cache key (above)"; exit 1; }
CACHE_DIR="$CACHE_ROOT/$KEY"

if [ -n "${MMCV_WHEEL:-}" ]; then
    [ -f "$MMCV_WHEEL" ] || { log "MMCV_WHEEL=$MMCV_WHEEL: no such file"; exit 1; }
    log "installing the given wheel $MMCV_WHEEL"
    "${PIP[@]}" install --force-reinstall --no-deps "$MMCV_WHEEL"
    "${PIP[@]}" install "$MMCV_WHEEL"   # its dependencies (mmengine, addict, yapf, opencv-python, ...)
elif [ -z "${MMCV_REBUILD:-}" ] && mmcv_ok; then
    log "mmcv $MMCV_VERSION with ops already installed in $PY"
else
    WHEEL="$(ls "$CACHE_DIR"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n 1 || true)"
    if [ -n "${MMCV_REBUILD:-}" ] || [ -z "$WHEEL" ]; then
        if [[ "$KEY" == *_cuda* ]] && ! command -v "${CUDA_HOME:+$CUDA_HOME/bin/}nvcc" >/dev/null; then
            log "a CUDA build needs nvcc (CUDA_HOME=${CUDA_HOME:-unset}): load the CUDA toolkit matching torch's" \
                "CUDA, or give a prebuilt CUDA wheel (MMCV_WHEEL=...)"
            exit 1
        fi
        log "building mmcv $MMCV_VERSION with ops (key $KEY); about 8 minutes on 2 cores (CPU only)"
        START=$(date +%s)
        WORK="$(mktemp -d)"
        trap 'rm -rf "$WORK"' EXIT
        # --no-build-isolation: preparing the sdist's metadata runs its setup.py, which needs pkg_resources.
        "${PIP[@]}" download -q --no-deps --no-build-isolation --no-binary :all: "mmcv==$MMCV_VERSION" -d "$WORK"
        tar -xzf "$WORK"/mmcv-"$MMCV_VERSION".tar.gz -C "$WORK"
        SRC="$WORK/mmcv-$MMCV_VERSION"
        grep -q -- '-std=c++17' "$SRC/setup.py" || { log "setup.py has no -std=c++17 to patch"; exit 1; }
        sed -i 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
        ! grep -q -- '-std=c++17' "$SRC/setup.py" || { log "setup.py still asks for C++17"; exit 1; }
        (
            cd "$SRC"
            MMCV_WITH_OPS=1 MAX_JOBS="$MAX_JOBS" \
            CFLAGS="-O3 -g0 -DNDEBUG -fwrapv" CXXFLAGS="-O3 -g0 -DNDEBUG -fwrapv" \
                "${PIP[@]}" wheel --no-deps --no-build-isolation -w "$WORK/dist" .
        )
        BUILT="$(ls "$WORK"/dist/mmcv-"$MMCV_VERSION"-*.whl | head -n 1)"
        mkdir -p "$CACHE_DIR"
        cp "$BUILT" "$CACHE_DIR/.partial" && mv "$CACHE_DIR/.partial" "$CACHE_DIR/$(basename "$BUILT")"
        WHEEL="$CACHE_DIR/$(basename "$BUILT")"
        log "built $(basename "$WHEEL") ($(du -h "$WHEEL" | cut -f1)) in $(( $(date +%s) - START )) s"
    else
        log "using the cached wheel $WHEEL"
    fi
    "${PIP[@]}" install --force-reinstall --no-deps "$WHEEL"
    "${PIP[@]}" install "$WHEEL"
fi

# mmengine and mmdet: the `detection` extra of pyproject.toml (read from there, not repeated here).
mapfile -t DETECTION < <("$PY" - "$ROOT/pyproject.toml" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
try:
    import tomllib
    extra = tomllib.loads(text)["project"]["optional-dependencies"]["detection"]
except ModuleNotFoundError:  # Python 3.10
    extra = re.findall(r'"([^"]+)"', re.search(r"^detection\s*=\s*\[(.*?)\]", text, re.M | re.S).group(1))
print("\n".join(extra))
EOF
)
log "installing ${DETECTION[*]}"
"${PIP[@]}" install "${DETECTION[@]}"

mmcv_ok || { log "mmcv $MMCV_VERSION with working ops is NOT importable after the install"; exit 1; }
"$PY" -c "import mmdet, mmengine, mmcv; print('[install_mmcv] mmcv', mmcv.__version__, '| mmengine',
mmengine.__version__, '| mmdet', mmdet.__version__)"

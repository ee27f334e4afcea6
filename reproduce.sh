#!/usr/bin/env bash
# Set up, run every notebook, test. See README.md.
#   ./reproduce.sh                      setup + run (quick profile)
#   ./reproduce.sh setup                create .venv, install torch (CPU, pinned) then the project with its
#                                       notebooks, test and ray extras (the Ray executor is tested), register a kernel
#   ./reproduce.sh run [--profile quick|paper]
#                                       execute notebooks/NN_*.ipynb in order with papermill
#   ./reproduce.sh test                 setup (if needed) + ruff + pytest (library) + nbval (committed notebooks),
#                                       from an empty toy results cache
set -euo pipefail
cd "$(dirname "$0")"
VENV=.venv
PY="$VENV/bin/python"

setup() {
  if [ ! -x "$PY" ]; then
    python3 -m venv "$VENV"
  fi
  # torch first and pinned: the CPU build is on local disk; an unpinned torch pulls a multi-GB CUDA build.
  "$PY" -m pip install --quiet torch==2.13.0
  "$PY" -m pip install --quiet -e ".[notebooks,test,ray]"
  "$PY" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (recgoat)" >/dev/null
}

run_notebooks() {
  local profile=quick
  while [ $# -gt 0 ]; do
    case "$1" in
      --profile) profile="$2"; shift 2 ;;
      --profile=*) profile="${1#*=}"; shift ;;
      *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
  done
  case "$profile" in quick|paper) ;; *) echo "profile must be quick or paper, got '$profile'" >&2; exit 2 ;; esac
  # quick: notebooks are executed in place (the committed copies); paper: copies under results/executed/paper/
  local out=notebooks params=()
  if [ "$profile" = paper ]; then out=results/executed/paper; params=(-p PROFILE paper); mkdir -p "$out"; fi
  # The quick run records each notebook's headline numbers in results/pins/ (review their diff and
  # commit them); every other execution, CI's nbval included, checks against them.
  export RECGOAT_RECORD_PINS=1
  # No progress bars in executed copies: a batch run's bar is saved as a widget whose text shows 0%
  # (TQDM_DISABLE=1 turns off the bars that do not ask for themselves; recgoat_lib.notebook_outputs
  # strips the rest). Run a notebook in Jupyter to see them live.
  export TQDM_DISABLE=1
  for nb in notebooks/[0-9][0-9]_*.ipynb; do
    echo "== $nb ($profile)"
    if ! "$VENV/bin/papermill" "$nb" "$out/$(basename "$nb")" "${params[@]}" -k python3 \
         --cwd notebooks --log-level WARNING; then
      echo "FAILED: $nb (profile $profile); the failing cell is marked in $out/$(basename "$nb")" >&2
      exit 1
    fi
    "$PY" -m recgoat_lib.notebook_outputs "$out/$(basename "$nb")"
  done
  # Real-data tables and figures from the committed run records, then the README's generated parts.
  "$PY" -m recgoat_lib.study --table-only
  "$PY" -m recgoat_lib.investigations --table-only
  "$PY" -m recgoat_lib.crosscheck  # the toy verdicts of the executions kept in results/cross_isa/ (three CPUs)
  "$PY" -m recgoat_lib.report
}

run_tests() {
  # CI checks fresh numbers: start from an empty toy cache (real-data records are never removed).
  rm -rf results/runs/toy results/checkpoints
  "$VENV/bin/ruff" check recgoat_lib tests benchmarks
  # Two workers (one torch thread each, see recgoat_lib/determinism.py); notebooks that need the same
  # run wait for each other's record through the runner's spec locks instead of training it twice.
  RECGOAT_REQUIRE_RAY=1 "$VENV/bin/pytest" tests -q -p no:cacheprovider -n 2  # the ray extra is installed: its tests must run
  "$VENV/bin/pytest" --nbval-lax --nbval-current-env -q -p no:cacheprovider -n 2 --dist loadfile notebooks/
}

case "${1:-all}" in
  setup) setup ;;
  run) shift; run_notebooks "$@" ;;
  test) setup; run_tests ;;
  all) setup; run_notebooks --profile quick ;;
  *) echo "usage: $0 [setup|run [--profile quick|paper]|test]" >&2; exit 2 ;;
esac

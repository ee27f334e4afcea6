#!/usr/bin/env bash
# Everything this project checks on a lent GPU, as one script with two phases, because a lease is
# short and what one call can carry is limited (README, Profiles: "On a GPU").
#
#   gpu_lease.sh checks OUT DATA_ROOT
#       the CUDA tests (tests/test_cuda.py); a call that carries little else can carry large files for
#       the next: DATA_ROOT is copied to STAGE (default /tmp/recgoat_stage), which the study phase of a
#       later call on the same machine adds to its own data root;
#   gpu_lease.sh study OUT DATA_ROOT SECONDS LABEL...
#       the paper-profile dry run of Baby on CUDA, then the converged Sports study's missing runs
#       for the labels given: one study process per label (its two grid points side by side, then the
#       chosen point's other seeds), all sharing the GPU, until SECONDS after the phase began. Every
#       run that finished has its record written; the others are left for a later lease or the CPU.
#
# DATA_ROOT holds MMRec-layout folders: baby/baby.inter, and sports/ with sports.inter, item_text.tsv,
# text_feat.npy and, for RecGOAT's user branch, user_text_feat.npy (`python -m recgoat_lib.lm sports`
# writes both feature files); without user_text_feat.npy the label "recgoat" is skipped. A feature file
# too large for one call travels as parts (`python -m benchmarks.feature_parts split FILE --max-mb M`),
# some with the checks call, the rest with the study call; the study phase joins them before training
# and stops if a part is missing.
# Results come back in OUT: <phase>_results.tgz (records, dry-run tables and figures), <phase>_logs.tgz
# and <phase>_steps.txt; the end of each log is printed. PYTHON names the interpreter (default python3);
# DEVICE=cpu DRY_RUN_ARGS="--epochs 1 --max-batches 2" runs the same steps on a CPU, as a quick check.
set -u
phase=${1:?checks or study}; out=${2:?output folder}; export RECGOAT_DATA_ROOT=$(realpath "${3:?data root}")
device=${DEVICE:-cuda}; dry=(--device "$device" ${DRY_RUN_ARGS:-}); py=${PYTHON:-python3}
stage=${STAGE:-/tmp/recgoat_stage}
export PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30
mkdir -p "$out"; logs=$(mktemp -d)
start=$(date +%s)
say() { echo "$phase: $* at $(( $(date +%s) - start )) s" | tee -a "$out/${phase}_steps.txt"; }
(nvidia-smi; $py -c "import torch, torch_geometric; print('torch', torch.__version__, 'pyg', torch_geometric.__version__)") \
  > "$logs/machine.txt" 2>&1
(nvidia-smi dmon -s um -d 5 > "$logs/dmon.txt" 2>&1 &)
case $phase in
  checks)
    $py -m pytest tests/test_cuda.py -q -p no:cacheprovider > "$logs/cuda_tests.log" 2>&1
    say "cuda tests rc=$?"
    mkdir -p "$stage" && cp -r "$RECGOAT_DATA_ROOT"/. "$stage"/ && say "data root staged"
    ;;
  study)
    seconds=${4:?study seconds}; shift 4
    labels=("$@")
    [ -d "$stage" ] && cp -rn "$stage"/. "$RECGOAT_DATA_ROOT"/
    $py -m benchmarks.feature_parts join "$RECGOAT_DATA_ROOT" > "$logs/feature_parts.log" 2>&1 \
      || { say "feature parts missing"; cat "$logs/feature_parts.log"; exit 1; }
    if [ ! -f "$RECGOAT_DATA_ROOT/sports/user_text_feat.npy" ]; then
      labels=(); for l in "$@"; do [ "$l" = recgoat ] || labels+=("$l"); done
      say "no user_text_feat.npy: recgoat skipped"
    fi
    if [ "${DRY_RUN:-1}" = 1 ]; then  # DRY_RUN=0 leaves the lease to the study once the GPU row is in
      $py -m recgoat_lib.dry_run --dataset baby "${dry[@]}" > "$logs/dry_run_baby.log" 2>&1
      say "dry run baby rc=$?"
    fi
    left=$(( seconds - ($(date +%s) - start) ))
    for label in "${labels[@]}"; do
      timeout -k 15 -s INT $left $py -m recgoat_lib.study --models "$label" --executor processes \
        --workers 2 --threads 1 > "$logs/study_${label//[^a-zA-Z0-9]/_}.log" 2>&1 &
    done
    wait
    say "study stopped"
    ;;
  *) echo "unknown phase $phase" >&2; exit 2 ;;
esac
tar czf "$out/${phase}_results.tgz" results/runs/sports results/dry_run results/tables
tar czf "$out/${phase}_logs.tgz" -C "$logs" .
for f in "$logs"/*.log; do echo "== ${f##*/}"; tr '\r' '\n' < "$f" | grep -v '^\s*$' | tail -n 6 | cut -c 1-300; done
cat "$out/${phase}_steps.txt"

#!/usr/bin/env bash
# Trains every trained part of issue 19 at once on one GPU (the H200 host: about 7 minutes), from the
# project root:  bash tools/trained/train-all.sh OUTDIR
# OUTDIR/diffusion-14m: the masked-diffusion fixture; OUTDIR/trimkv-M512, trimkv-M1024: TRIM-KV gates
# trained for capacities of 512 and 1024 tokens per KV head; OUTDIR/nosa: NOSA-style value scores.
set -euo pipefail
out=${1:?usage: train-all.sh OUTDIR}
mkdir -p "$out"
here=$(dirname "$0")
python3 "$here/train_diffusion.py" --out "$out/diffusion-14m" --seconds "${DIFFUSION_SECONDS:-400}" > "$out/diffusion.log" 2>&1 &
python3 "$here/train_trimkv.py" --out "$out/trimkv-M512" --capacity 512 --seconds "${TRIMKV_SECONDS:-240}" > "$out/trimkv-M512.log" 2>&1 &
python3 "$here/train_trimkv.py" --out "$out/trimkv-M1024" --capacity 1024 --seconds "${TRIMKV_SECONDS:-240}" > "$out/trimkv-M1024.log" 2>&1 &
python3 "$here/train_nosa.py" --out "$out/nosa" --samples "${NOSA_SAMPLES:-256}" > "$out/nosa.log" 2>&1 &
status=0
for job in $(jobs -p); do wait "$job" || status=1; done
exit $status

#!/usr/bin/env bash
# Issue 13's GPU figures in one device run, from the project root on the GPU host (no network, no npm):
#   WebGPU kernels (bench/webgpu.ts --full), kvkit's decode at 4096 and 8192 tokens on WebGPU, full cache
#   against UnionKV and TokenSelect (bench/webgpu-decode.ts), and PyTorch eager on the same GPU with the
#   same prompt ids and the greedy ids checked (tools/pytorch-gpu-decode.py).
# Built on the dev machine first (npm run build; bash ../shared/device/prepare.sh); the run carries
# .device, build and dist, and its command is:
#   bash bench/gpu-session.sh          (re-runs itself under .device/env.sh when node is not on PATH)
# Writes 7 files to $OUT: session.log (each step's command, exit status, seconds), webgpu-kernels.log,
# prompt-ids.json, kvkit-decode.log/.json, pytorch-decode.log/.json. Each step is time-boxed and runs
# whatever the others did; the whole stays under 8 minutes (step limits add up to 7 min 5 s).
set +e
: "${OUT:?set OUT to the folder that comes back}"
if ! command -v node >/dev/null 2>&1 && [ -z "$KVKIT_GPU_SESSION" ]; then
  KVKIT_GPU_SESSION=1 exec bash .device/env.sh bash "$0" "$@"
fi
LENGTHS=${LENGTHS:-4096,8192}
NEW=${NEW:-64}
RUNS=${RUNS:-3}
log="$OUT/session.log"
echo "gpu-session $(date -u +%FT%TZ) node $(node --version 2>&1) lengths $LENGTHS new $NEW runs $RUNS" | tee "$log"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee -a "$log"

# step NAME SECONDS LOGFILE COMMAND...: runs COMMAND under a time limit, output to LOGFILE, then records
# its exit status (124: over the limit) and shows the log's tail
step() {
  local name=$1 limit=$2 out=$3
  shift 3
  echo "== $name (limit ${limit}s): $*" | tee -a "$log"
  local t0=$SECONDS
  timeout -k 10 "$limit" "$@" >"$out" 2>&1
  local rc=$?
  echo "== $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$log"
  tail -n 25 "$out"
  return 0
}

step webgpu-kernels 110 "$OUT/webgpu-kernels.log" node dist/bench/webgpu.js --full
# the prompt ids first, on wasm, so that PyTorch has them even if the WebGPU runtime fails to load
step prompt-ids 45 "$OUT/session-ids.log" node dist/bench/webgpu-decode.js --backend wasm --lengths "$LENGTHS" --ids-only --ids-out "$OUT/prompt-ids.json"
cat "$OUT/session-ids.log" >>"$log" && rm -f "$OUT/session-ids.log"
step kvkit-decode 180 "$OUT/kvkit-decode.log" node dist/bench/webgpu-decode.js --backend webgpu --lengths "$LENGTHS" --new "$NEW" --runs "$RUNS" --json "$OUT/kvkit-decode.json"
check=()
[ -s "$OUT/kvkit-decode.json" ] && check=(--kvkit "$OUT/kvkit-decode.json")
step pytorch-decode 90 "$OUT/pytorch-decode.log" python3 tools/pytorch-gpu-decode.py --device cuda --ids "$OUT/prompt-ids.json" --lengths "$LENGTHS" --new "$NEW" --runs "$RUNS" "${check[@]}" --json "$OUT/pytorch-decode.json"
echo "gpu-session done after $SECONDS s" | tee -a "$log"

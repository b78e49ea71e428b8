#!/usr/bin/env bash
# The GPU-machine check (an H100/H200 with jax's CUDA plugin), at most ~8 minutes. Writes one
# JSON of results to ${OUT:-.}/device_check.json.
#
# Carried with the working tree: nothing beyond the repository (deno is on PATH there, and
# the plugin, JAX 0.11, flax, optax, timm and torch are in /opt/torch/.venv).
#
# Runs, each step bounded by `timeout`:
#   1. ffi/smoke.ts on the CUDA plugin;
#   2. doctor --backend pjrt and doctor --backend webgpu;
#   3. the train-step benchmark (`deno task bench --only train`) on PJRT and on WebGPU. Not yet
#      here: ViT-S/16 and ViT-B/16 at batch 256 in one run with deit3-jax under JAX and timm in
#      TF32/bf16 (bench.ts has no model/batch flags yet; see notes/issue-13.md);
#   4. 300 MNIST steps on PJRT and on the CPU backend; the loss curves must agree.
# Status: not run: no device was lent to the session that wrote it (see notes/issue-13.md).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-.}
mkdir -p "$out"
venv=/opt/torch/.venv
plugin=${PJRT_PLUGIN_PATH:-$venv/lib/python3.12/site-packages/jax_plugins/xla_cuda13/xla_cuda_plugin.so}
export PJRT_PLUGIN_PATH=$plugin
results=()
step() { # name, seconds, command...
  local name=$1 secs=$2; shift 2
  local t0=$SECONDS log="$out/$name.log"
  timeout "$secs" "$@" >"$log" 2>&1
  local rc=$?
  results+=("{\"step\":\"$name\",\"rc\":$rc,\"seconds\":$((SECONDS - t0)),\"log\":\"$name.log\"}")
  echo "$name: rc $rc ($((SECONDS - t0)) s)"
}
step smoke 60 deno run -A ffi/smoke.ts --pjrt-plugin "$plugin"
step doctor-pjrt 90 deno task doctor --backend pjrt --json
step doctor-webgpu 90 deno task doctor --backend webgpu --json
step bench-pjrt 120 deno task bench --backend pjrt --only train --json
step bench-webgpu 90 deno task bench --backend webgpu --only train --json
step mnist-pjrt 60 deno task train --backend pjrt --training-steps 300 --output-dir "$out/mnist-pjrt"
step mnist-cpu 120 deno task train --backend cpu --training-steps 300 --output-dir "$out/mnist-cpu"
step mnist-compare 10 deno eval '
  const read = (d) => Deno.readTextFileSync(d + "/metrics.jsonl").trim().split("\n").map(JSON.parse)
    .filter((e) => "train/loss" in e).map((e) => e["train/loss"]);
  const a = read(Deno.args[0]), b = read(Deno.args[1]);
  const worst = Math.max(...a.map((v, i) => Math.abs(v - b[i])));
  console.log(JSON.stringify({ points: a.length, worstLossDifference: worst }));
  if (!(a.length === b.length && worst < 0.05)) Deno.exit(1);
' "$out/mnist-pjrt" "$out/mnist-cpu"
printf '{"machine":"%s","results":[%s]}\n' "$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)" \
  "$(IFS=,; echo "${results[*]}")" >"$out/device_check.json"
cat "$out/device_check.json"

#!/usr/bin/env bash
# The GPU-machine check (one H100/H200, CUDA PJRT plugin from jax), bounded to under 8 minutes:
# every step has its own timeout, and a step whose timeout no longer fits in BUDGET (470 s from
# the start) is skipped and recorded as such, so the script always ends in time and keeps what
# ran. The most telling steps come first, the slowest (ViT-B/16 compiles, WebGPU) last. Writes
# $OUT/device_check.json (every step's exit status, seconds and the JSON lines it printed) and
# $OUT/device_check.log (every step's output); each step's line on stdout says its compile time.
#
# What must be carried (device tool: carry [".dev"]; build it first with
# `bash scripts/device/device_carry.sh` in the checkout the device tool sends): the machine has python3
# with jax + the CUDA plugin, flax, optax, timm and torch, but no deno and no npm registry.
#   .dev/deno.xz               the deno binary, unpacked to /tmp/deno-bin
#   .dev/node_modules.tar.xz   node_modules (deno runs with --node-modules-dir=manual: no fetch)
#   .dev/mnist.tar.xz          data/mnist, the MNIST shards
#   .dev/debs/libvulkan1_*.deb the Vulkan loader for WebGPU, unpacked with dpkg -x when missing
# A run: command "bash scripts/device/device_check.sh", carry [".dev"], timeout_s 540.
#
# Steps in order (name: timeout in s); f32 and bf16 are separate steps:
#   smoke 20, doctor-pjrt 25        ffi/smoke.ts (add, dot, all-reduce with 2+ GPUs); doctor
#   ours-pjrt-s16-{f32,bf16} 60, 50 our ViT-S/16 step, batch 256 (compile includes autotuning)
#   jax-s16-{f32,bf16} 30 each      deit3-jax's step (bench_jax.py) at the same matmul precision
#   timm-s16-{tf32,bf16} 12 each    timm on CUDA: TF32, and bf16 autocast
#   mnist-pjrt 30, mnist-cpu 40, mnist-compare 5   300 MNIST steps; loss curves must agree
#   doctor-webgpu 20, ours-webgpu-s16 25
#   ours-pjrt-b16-{f32,bf16} 60, 50, jax-b16-* 30, timm-b16-* 12, ours-webgpu-b16 30 (the rest)
# Models: ViT-S/16 and ViT-B/16 at 224, LayerScale, drop-path 0.1, CE 0.1, AdamW, synthetic
# uint8 batch (bench/step_cells.ts; the peers get the same model from `bench --jax-config` and
# `bench --timm-flags`). Matmul precision MATMUL (default "default", jax's and the original's)
# for ours and deit3-jax alike. A failed, timed-out or skipped step is recorded; the next runs.
#
# Knobs: PLAN=1 prints the steps (name, timeout, command) and the sum of their timeouts, runs
# nothing (tests/ffi/device_check_test.ts checks it). DRY_RUN=1 runs every step on this machine's
# CPU at toy sizes (BATCH=2 STEPS=1 MODELS=tiny JAX_PLATFORM=cpu TORCH_DEVICE=cpu, 20 MNIST
# steps), to try the script without a GPU; the pjrt steps then fail fast unless a plugin is found.
# Status: not run on a device yet (written in sessions without one; see notes/issue-13.md).
# DRY_RUN=1 on the 2-core development machine (load average 24, no plugin): 145 s, every step
# recorded, most of them failing or timing out at once for want of a device.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
out=${OUT:-$PWD/device_check_out}
mkdir -p "$out"
work=$(mktemp -d)
log="$out/device_check.log"
: >"$log"
if [[ -n ${DRY_RUN:-} ]]; then
  : "${BATCH:=2}" "${STEPS:=1}" "${MODELS:=tiny}" "${JAX_PLATFORM:=cpu}" "${TORCH_DEVICE:=cpu}"
  : "${TRAIN_STEPS:=110}" # past the MNIST config's 100 warmup steps, which train requires
fi
batch=${BATCH:-256}
steps=${STEPS:-10}
read -ra models <<<"${MODELS:-s16 b16}"
jax_platform=${JAX_PLATFORM:-cuda}
torch_device=${TORCH_DEVICE:-cuda}
python=${PYTHON:-python3}
matmul=${MATMUL:-default}
budget=${BUDGET:-470}
train_steps=${TRAIN_STEPS:-300}
plan=${PLAN:-}

# What was carried (python's lzma where the image has no xz).
unxz_to_stdout() {
  if command -v xz >/dev/null; then xz -dc "$1"; else
    "$python" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$1"
  fi
}
if [[ -z $plan ]] && ! command -v deno >/dev/null; then
  mkdir -p /tmp/deno-bin
  unxz_to_stdout .dev/deno.xz >/tmp/deno-bin/deno && chmod +x /tmp/deno-bin/deno
  export PATH=/tmp/deno-bin:$PATH
fi
[[ -n $plan || -d node_modules || ! -f .dev/node_modules.tar.xz ]] || unxz_to_stdout .dev/node_modules.tar.xz | tar -xf -
[[ -n $plan || -d data/mnist || ! -f .dev/mnist.tar.xz ]] || unxz_to_stdout .dev/mnist.tar.xz | tar -xf -
# The Vulkan loader goes into / only on the GPU machine (a fresh one each call), never elsewhere.
export PATH=$PATH:/sbin:/usr/sbin
if command -v nvidia-smi >/dev/null && ! ldconfig -p | grep -q libvulkan.so.1 &&
  compgen -G ".dev/debs/*.deb" >/dev/null; then
  for f in .dev/debs/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[[ -f $icd && -z ${VK_DRIVER_FILES:-} ]] && export VK_DRIVER_FILES=$icd
if [[ -z $plan && -z ${PJRT_PLUGIN_PATH:-} ]]; then
  plugin=$("$python" -c 'import glob, os, jax_plugins
print(next(iter(sorted(p for d in jax_plugins.__path__
  for p in glob.glob(os.path.join(d, "*", "xla_cuda_plugin.so")))), ""))' 2>/dev/null)
  [[ -n $plugin ]] && export PJRT_PLUGIN_PATH=$plugin
fi
deno_run=(deno run --node-modules-dir=manual -A)

# step NAME SECONDS COMMAND...: runs it under timeout (skipped when it no longer fits in the
# budget); its stdout is kept for the JSON. Prints the step's compile time when it reports one.
planned=0
step() {
  local name=$1 secs=$2
  shift 2
  if [[ -n $plan ]]; then
    planned=$((planned + secs))
    printf '%s\t%s\t%s\n' "$name" "$secs" "$*"
    return
  fi
  local t0=$SECONDS
  if ((SECONDS + secs > budget)); then
    printf '%s\t%s\t%s\n' "$name" skipped 0 >>"$work/steps.tsv"
    echo "$name: skipped (its $secs s do not fit in the $((budget - SECONDS)) s left)"
    return
  fi
  printf '\n===== %s (timeout %s s): %s\n' "$name" "$secs" "$*" >>"$log"
  timeout -k 5 "$secs" "$@" >"$work/$name.out" 2>"$work/$name.err"
  local rc=$?
  cat "$work/$name.out" "$work/$name.err" >>"$log"
  printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" >>"$work/steps.tsv"
  local compile
  compile=$(grep -o '"compile_s": *[0-9.]*' "$work/$name.out" | head -1 | grep -o '[0-9.]*$')
  echo "$name: rc $rc ($((SECONDS - t0)) s)${compile:+, compile $compile s}"
}

bench=("${deno_run[@]}" tasks/bench.ts --batch "$batch" --steps "$steps" --json)
ours_pjrt() { # MODEL DTYPE SECONDS
  step "ours-pjrt-$1-$2" "$3" "${bench[@]}" --model "$1" --backend pjrt --dtype "$2" \
    --matmul-precision "$matmul"
}
jax() { # MODEL
  [[ -n $plan ]] || "${deno_run[@]}" tasks/bench.ts --model "$1" --jax-config "$work/$1.json"
  for p in f32 bf16; do
    JAX_PLATFORMS=$jax_platform step "jax-$1-$p" 30 "$python" scripts/peers/bench_jax.py train-step \
      "$work/$1.json" --batch "$batch" --steps "$steps" --precision "$p" \
      --matmul-precision "$matmul"
  done
}
timm() { # MODEL
  local flags=()
  [[ -n $plan ]] || read -ra flags <<<"$("${deno_run[@]}" tasks/bench.ts --model "$1" --timm-flags)"
  for d in tf32 bf16; do
    step "timm-$1-$d" 12 "$python" scripts/peers/bench_timm_vit.py "${flags[@]}" --batch "$batch" \
      --steps "$steps" --device "$torch_device" --dtype "$d" --threads 8
  done
}

first=${models[0]}
step smoke 20 "${deno_run[@]}" ffi/smoke.ts
step doctor-pjrt 25 "${deno_run[@]}" tasks/doctor.ts --backend pjrt --json
ours_pjrt "$first" f32 60
ours_pjrt "$first" bf16 50
jax "$first"
timm "$first"
train=("${deno_run[@]}" tasks/train.ts --training-steps "$train_steps" --log-interval 10)
rm -rf "$work/mnist-pjrt" "$work/mnist-cpu"
step mnist-pjrt 30 "${train[@]}" --backend pjrt --output-dir "$work/mnist-pjrt"
step mnist-cpu 40 "${train[@]}" --backend cpu --output-dir "$work/mnist-cpu"
step mnist-compare 5 "${deno_run[@]}" scripts/checks/compare_losses.ts "$work/mnist-pjrt" "$work/mnist-cpu"
step doctor-webgpu 20 "${deno_run[@]}" tasks/doctor.ts --backend webgpu --json
step "ours-webgpu-$first" 25 "${bench[@]}" --model "$first" --backend webgpu
for m in "${models[@]:1}"; do # the slower models last
  ours_pjrt "$m" f32 60
  ours_pjrt "$m" bf16 50
  jax "$m"
  timm "$m"
  step "ours-webgpu-$m" 30 "${bench[@]}" --model "$m" --backend webgpu
done
if [[ -n $plan ]]; then
  echo "total $planned s of timeouts; budget $budget s"
  rm -rf "$work"
  exit 0
fi

"$python" - "$work" "$out/device_check.json" <<'EOF'
import json, subprocess, sys
work, dest = sys.argv[1], sys.argv[2]
def json_lines(path):
    rows = []
    for line in open(path, errors="replace"):
        line = line.strip()
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass
    return rows
steps = []
for line in open(f"{work}/steps.tsv"):
    name, rc, secs = line.rstrip("\n").split("\t")
    if rc == "skipped":
        steps.append({"step": name, "rc": None, "skipped": True, "seconds": 0, "results": []})
        continue
    rc = int(rc)
    steps.append({"step": name, "rc": rc, "seconds": int(secs),
                  "timed_out": rc in (124, 137), "results": json_lines(f"{work}/{name}.out")})
try:
    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True).stdout.strip()
except OSError:
    gpu = "no nvidia-smi"
json.dump({"machine": gpu, "steps": steps}, open(dest, "w"), indent=1)
print(f"{dest}: {sum(s['rc'] == 0 for s in steps)} of {len(steps)} steps passed")
EOF
rm -rf "$work"

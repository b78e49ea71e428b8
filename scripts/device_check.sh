#!/usr/bin/env bash
# The GPU-machine check (one H100/H200, CUDA PJRT plugin from jax), bounded to under 8 minutes:
# the per-step timeouts below sum to 478 s. Writes $OUT/device_check.json (every step's exit
# status, seconds and the JSON lines it printed) and $OUT/device_check.log (every step's output).
#
# What must be carried (device tool: carry [".dev"]; build it first with
# `bash scripts/device_carry.sh` in the checkout the device tool sends): the machine has python3
# with jax + the CUDA plugin, flax, optax, timm and torch, but no deno and no npm registry.
#   .dev/deno.xz               the deno binary, unpacked to /tmp/deno-bin
#   .dev/node_modules.tar.xz   node_modules (deno runs with --node-modules-dir=manual: no fetch)
#   .dev/mnist.tar.xz          data/mnist, the MNIST shards
#   .dev/debs/libvulkan1_*.deb the Vulkan loader for WebGPU, unpacked with dpkg -x when missing
# A run: command "bash scripts/device_check.sh", carry [".dev"], timeout_s 540.
#
# Steps (name: timeout):
#   smoke 15, doctor-pjrt 30, doctor-webgpu 25           ffi/smoke.ts; doctor on both backends
#   ours-pjrt-s16 45, ours-pjrt-b16 60                   our step, f32 and bf16, batch 256
#   ours-webgpu-{s16,b16} 30 each                        our step on WebGPU (f32), batch 256
#   jax-{s16,b16}-{f32,bf16} 30 each                     deit3-jax's step (bench_jax.py), CUDA
#   timm-{s16,b16}-{tf32,bf16} 12 each                   timm on CUDA: TF32, and bf16 autocast
#   mnist-pjrt 30, mnist-cpu 40, mnist-compare 5         300 MNIST steps; loss curves must agree
# Models: ViT-S/16 and ViT-B/16 at 224, LayerScale, drop-path 0.1, CE 0.1, AdamW, synthetic
# uint8 batch (bench/step_cells.ts; the peers get the same model from `bench --jax-config` and
# `bench --timm-flags`). A failed or timed-out step is recorded and the next one runs.
# Status: not run on a device yet (written in a session without one; see notes/issue-13.md).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
out=${OUT:-$PWD/device_check_out}
mkdir -p "$out"
work=$(mktemp -d)
log="$out/device_check.log"
: >"$log"
# Knobs for a dry run on a CPU machine (BATCH=2 STEPS=1 MODELS=tiny JAX_PLATFORM=cpu
# TORCH_DEVICE=cpu): the same steps at toy sizes.
batch=${BATCH:-256}
steps=${STEPS:-10}
read -ra models <<<"${MODELS:-s16 b16}"
jax_platform=${JAX_PLATFORM:-cuda}
torch_device=${TORCH_DEVICE:-cuda}
python=${PYTHON:-python3}

# What was carried (python's lzma where the image has no xz).
unxz_to_stdout() {
  if command -v xz >/dev/null; then xz -dc "$1"; else
    "$python" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$1"
  fi
}
if ! command -v deno >/dev/null; then
  mkdir -p /tmp/deno-bin
  unxz_to_stdout .dev/deno.xz >/tmp/deno-bin/deno && chmod +x /tmp/deno-bin/deno
  export PATH=/tmp/deno-bin:$PATH
fi
[[ -d node_modules ]] || unxz_to_stdout .dev/node_modules.tar.xz | tar -xf -
[[ -d data/mnist ]] || unxz_to_stdout .dev/mnist.tar.xz | tar -xf -
# The Vulkan loader goes into / only on the GPU machine (a fresh one each call), never elsewhere.
export PATH=$PATH:/sbin:/usr/sbin
if command -v nvidia-smi >/dev/null && ! ldconfig -p | grep -q libvulkan.so.1 &&
  compgen -G ".dev/debs/*.deb" >/dev/null; then
  for f in .dev/debs/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[[ -f $icd && -z ${VK_DRIVER_FILES:-} ]] && export VK_DRIVER_FILES=$icd
if [[ -z ${PJRT_PLUGIN_PATH:-} ]]; then
  plugin=$("$python" -c 'import glob, os, jax_plugins
print(next(iter(sorted(p for d in jax_plugins.__path__
  for p in glob.glob(os.path.join(d, "*", "xla_cuda_plugin.so")))), ""))' 2>/dev/null)
  [[ -n $plugin ]] && export PJRT_PLUGIN_PATH=$plugin
fi
deno_run=(deno run --node-modules-dir=manual -A)

# step NAME SECONDS COMMAND...: runs it under timeout; its stdout is kept for the JSON.
step() {
  local name=$1 secs=$2
  shift 2
  local t0=$SECONDS
  printf '\n===== %s (timeout %s s): %s\n' "$name" "$secs" "$*" >>"$log"
  timeout -k 5 "$secs" "$@" >"$work/$name.out" 2>"$work/$name.err"
  local rc=$?
  cat "$work/$name.out" "$work/$name.err" >>"$log"
  printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" >>"$work/steps.tsv"
  echo "$name: rc $rc ($((SECONDS - t0)) s)"
}

step smoke 15 "${deno_run[@]}" ffi/smoke.ts
step doctor-pjrt 30 "${deno_run[@]}" tasks/doctor.ts --backend pjrt --json
step doctor-webgpu 25 "${deno_run[@]}" tasks/doctor.ts --backend webgpu --json
bench=("${deno_run[@]}" tasks/bench.ts --batch "$batch" --steps "$steps" --json)
for m in "${models[@]}"; do
  step "ours-pjrt-$m" "$([[ $m == b16 ]] && echo 60 || echo 45)" "${bench[@]}" --model "$m" --backend pjrt --dtype f32,bf16
done
for m in "${models[@]}"; do
  step "ours-webgpu-$m" 30 "${bench[@]}" --model "$m" --backend webgpu
done
for m in "${models[@]}"; do
  "${deno_run[@]}" tasks/bench.ts --model "$m" --jax-config "$work/$m.json"
  for p in f32 bf16; do
    # f32 at HIGHEST matmul precision, as our emitter's f32 dots (no TF32); notes/anchors.md
    # has deit3-jax at XLA's default precision (TF32) on the H200 for that comparison.
    JAX_PLATFORMS=$jax_platform step "jax-$m-$p" 30 "$python" scripts/bench_jax.py train-step \
      "$work/$m.json" --batch "$batch" --steps "$steps" --precision "$p" \
      --matmul-precision highest
  done
done
for m in "${models[@]}"; do
  read -ra flags <<<"$("${deno_run[@]}" tasks/bench.ts --model "$m" --timm-flags)"
  for d in tf32 bf16; do
    step "timm-$m-$d" 12 "$python" scripts/bench_timm_vit.py "${flags[@]}" --batch "$batch" \
      --steps "$steps" --device "$torch_device" --dtype "$d" --threads 8
  done
done
train=("${deno_run[@]}" tasks/train.ts --training-steps 300 --log-interval 10)
rm -rf "$work/mnist-pjrt" "$work/mnist-cpu"
step mnist-pjrt 30 "${train[@]}" --backend pjrt --output-dir "$work/mnist-pjrt"
step mnist-cpu 40 "${train[@]}" --backend cpu --output-dir "$work/mnist-cpu"
step mnist-compare 5 "${deno_run[@]}" scripts/compare_losses.ts "$work/mnist-pjrt" "$work/mnist-cpu"

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

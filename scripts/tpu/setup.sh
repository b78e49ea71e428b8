#!/usr/bin/env bash
# Installs Deno, libtpu and this repository on every worker of a TPU VM slice (Ubuntu 22.04,
# the tpu-ubuntu2204-base image).
#   scripts/tpu/setup.sh NAME [ZONE] [REPO_URL]
# - Deno: the official release binary (DENO_VERSION, default 2.9.6) into ~/.deno/bin. Not from
#   npm: Ubuntu 22.04's apt Node is 12, too old for npm's deno package, and `npm install -g`
#   needs root. The zip is unpacked with Python's zipfile (the image has no unzip).
# - libtpu: `pip install --user` puts it in ~/.local/lib/python3.*/site-packages/libtpu, where
#   ffi/discovery.ts looks (~/.local is one of its Python prefixes).
# - A non-interactive ssh shell never gets past ~/.bashrc's interactive check, so ~/.deno/bin
#   is not on its PATH: launch.sh puts it there in the command it runs.
set -euo pipefail
name=${1:?usage: setup.sh NAME [ZONE] [REPO_URL]}
zone=${2:-us-central2-b}
repo=${3:-$(git config --get remote.origin.url)}
deno_version=${DENO_VERSION:-2.9.6}
gcloud compute tpus tpu-vm ssh "$name" --zone "$zone" --worker=all --command "
  set -e
  sudo apt-get update -qq && sudo apt-get install -y -qq git curl python3-pip
  python3 -m pip install --user -q libtpu
  mkdir -p ~/.deno/bin
  curl -fsSL -o /tmp/deno.zip \
    https://dl.deno.land/release/v$deno_version/deno-\$(uname -m)-unknown-linux-gnu.zip
  python3 -m zipfile -e /tmp/deno.zip ~/.deno/bin && chmod +x ~/.deno/bin/deno
  export PATH=\$HOME/.deno/bin:\$PATH
  [ -d ~/deit3-deno ] || git clone $(printf %q "$repo") ~/deit3-deno
  cd ~/deit3-deno && git pull -q && deno install
  deno task doctor --backend pjrt
"

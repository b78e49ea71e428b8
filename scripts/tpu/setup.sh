#!/usr/bin/env bash
# Installs Deno, libtpu and this repository on every worker of a TPU VM slice.
#   scripts/tpu/setup.sh NAME [ZONE] [REPO_URL]
set -euo pipefail
name=${1:?usage: setup.sh NAME [ZONE] [REPO_URL]}
zone=${2:-us-central2-b}
repo=${3:-$(git config --get remote.origin.url)}
gcloud compute tpus tpu-vm ssh "$name" --zone "$zone" --worker=all --command "
  set -e
  sudo apt-get update -qq && sudo apt-get install -y -qq git nodejs npm python3-pip
  pip install --user -q libtpu
  npm install -g deno@2.9.6
  [ -d deit3-deno ] || git clone '$repo' deit3-deno
  cd deit3-deno && git pull -q && deno install
  deno task doctor --backend pjrt
"

#!/usr/bin/env bash
# Runs a command as if none of the optional Debian packages were installed (libturbojpeg0,
# libopenblas0-pthread, chromium, mlir-16-tools, python3-torch, python3-pil, python3-msgpack,
# python3-numpy, mesa-vulkan-drivers) and without the peer venv (~/.cache/deit3-peers), by hiding
# their files in a private mount namespace: nothing is uninstalled, other processes see them as
# usual. Needs root (or user namespaces: it re-runs itself under `unshare -rm` when not root).
#   scripts/without_optional.sh deno task test
set -euo pipefail
if [[ "${WITHOUT_OPTIONAL_INSIDE:-}" != 1 ]]; then
  if [[ $(id -u) == 0 ]]; then flags=(-m); else flags=(-rm); fi
  WITHOUT_OPTIONAL_INSIDE=1 exec unshare "${flags[@]}" --propagation private "$0" "$@"
fi
empty=$(mktemp -d)
nomodule=$(mktemp -d) # a Python package that fails to import (an empty folder would import)
echo 'raise ModuleNotFoundError("hidden by scripts/without_optional.sh")' >"$nomodule/__init__.py"
hide() { # hide PATH...: a file becomes /dev/null (not loadable, not runnable), a folder empty
  for p in "$@"; do
    if [[ $p == */dist-packages/* && -d $p ]]; then mount --bind "$nomodule" "$p"
    elif [[ -d $p && ! -L $p ]]; then mount --bind "$empty" "$p"
    elif [[ -e $p ]]; then mount --bind /dev/null "$(readlink -f "$p")"; fi
  done
}
hide /usr/lib/*-linux-gnu/libturbojpeg.so* /usr/lib/*-linux-gnu/openblas-pthread/*.so* \
  /usr/lib/*-linux-gnu/libopenblas*.so* /usr/bin/chromium /usr/bin/chromium-browser \
  /usr/lib/chromium /usr/bin/mlir-*-16 /usr/lib/llvm-16/bin \
  /usr/lib/python3/dist-packages/{torch,functorch,torchgen,PIL,msgpack,numpy} \
  /usr/share/vulkan/icd.d "$HOME/.cache/deit3-peers"
exec "$@"

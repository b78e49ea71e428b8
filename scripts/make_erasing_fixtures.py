#!/usr/bin/env python3
"""Reference cases for RandomErasing's `original` fill, made with torchvision (the peer venv:
torch 2.13, torchvision 0.28), exactly as deit3-jax applies it: `transforms.v2.RandomErasing(p,
value="random")` on the PIL image. Each case draws the box and the float32 noise `v` with
torchvision's own `make_params`, then erases with `transforms.v2.functional.erase` on the PIL
image. The TypeScript test replays `eraseBox(image, box, v, "original")` and compares bytes.

    $(bash ../shared/tools/peers.sh | tail -1) scripts/make_erasing_fixtures.py

Writes tests/fixtures/augment/erasing/torchvision.json.
"""
import base64
import json
import os

import numpy as np
import torch
import torchvision
import torchvision.transforms.v2 as T
import torchvision.transforms.v2.functional as F
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests/fixtures/augment/erasing/torchvision.json")


def b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()


def main() -> None:
    torch.manual_seed(0)
    rs = np.random.RandomState(0)
    erasing = T.RandomErasing(p=1.0, value="random")
    cases = []
    for i, (h, w) in enumerate([(24, 20), (32, 32), (17, 29), (48, 40)]):
        pixels = rs.randint(0, 256, size=(h, w, 3), dtype=np.uint8)
        img = Image.fromarray(pixels, "RGB")
        params = erasing.make_params([img])
        if params["v"] is None:
            continue
        out = F.erase(img, **{k: params[k] for k in "ijhwv"})
        v = params["v"].numpy().astype(np.float32)  # [3, h, w]
        cases.append({
            "width": w,
            "height": h,
            "image": b64(pixels),
            "box": {"top": params["i"], "left": params["j"], "height": params["h"],
                    "width": params["w"]},
            "noise": b64(v),
            "out": b64(np.asarray(out, dtype=np.uint8)),
        })
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"torch": torch.__version__, "torchvision": torchvision.__version__,
                   "cases": cases}, f, indent=1)
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()

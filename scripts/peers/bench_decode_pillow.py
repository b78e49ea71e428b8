#!/usr/bin/python3
"""Pillow peer for bench/data.ts: the same JPEGs, the same work, in Python.

Run with Debian's python3-pil (/usr/bin/python3). Prints one JSON object:
  decode       img/s of Image.open(...).convert("RGB") per CPU second (process time)
  pipeline     img/s of decode + RandomResizedCrop(224) + horizontal flip per CPU second, as
               timm/torchvision do it on PIL images (crop, then bicubic resize, then transpose)
  loader_<n>   img/s (wall clock) of the pipeline plus the HWC -> CHW uint8 copy a loader does,
               in n processes (multiprocessing.Pool), for each n in --workers
"""
import argparse
import glob
import io
import json
import math
import multiprocessing
import os
import random
import time

import PIL
from PIL import Image

try:
    import numpy as np
except ImportError:  # the CHW copy is then skipped
    np = None

FILES = []


def load(directory):
    FILES.clear()
    for path in sorted(glob.glob(os.path.join(directory, "*.jpg"))):
        with open(path, "rb") as f:
            FILES.append(f.read())
    if not FILES:
        raise SystemExit(f"no .jpg files in {directory}")


def decode(data):
    return Image.open(io.BytesIO(data)).convert("RGB")


def rrc_params(width, height, rng, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    # torchvision.transforms.RandomResizedCrop.get_params
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, height - h), rng.randint(0, width - w), h, w
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def pipeline(data, rng, size=224):
    img = decode(data)
    top, left, h, w = rrc_params(img.width, img.height, rng)
    img = img.crop((left, top, left + w, top + h)).resize((size, size), Image.BICUBIC)
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return img


def loader_item(data, rng):
    img = pipeline(data, rng)
    if np is not None:
        return np.ascontiguousarray(np.asarray(img).transpose(2, 0, 1))
    return img.tobytes()


def rate(fn, seconds, clock=time.process_time):
    n, t0 = 0, clock()
    while True:
        fn(FILES[n % len(FILES)])
        n += 1
        dt = clock() - t0
        if dt >= seconds and n >= len(FILES):
            return n / dt


def pool_worker(args):
    directory, seconds, seed = args
    load(directory)
    rng = random.Random(seed)
    for data in FILES[:8]:  # warm-up
        loader_item(data, rng)
    return rate(lambda d: loader_item(d, rng), seconds, time.perf_counter)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("directory")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--workers", default="1,2")
    p.add_argument("--only", default="decode,pipeline,loader")
    a = p.parse_args()
    load(a.directory)
    only = set(a.only.split(","))
    rng = random.Random(0)
    out = {"pillow": PIL.__version__, "images": len(FILES)}
    for data in FILES[:8]:  # warm-up
        pipeline(data, rng)
    if "decode" in only:
        out["decode"] = rate(decode, a.seconds)
    if "pipeline" in only:
        out["pipeline"] = rate(lambda d: pipeline(d, rng), a.seconds)
    if "loader" in only:
        for n in [int(x) for x in a.workers.split(",") if x]:
            with multiprocessing.Pool(n) as pool:
                rates = pool.map(pool_worker, [(a.directory, a.seconds, i) for i in range(n)])
            out[f"loader_{n}"] = sum(rates)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Peer benchmark for lib/augment: the same ops and train transform with Pillow (Debian's
python3-pil) on one core. Run by bench/augment.ts side by side with the Deno version:

    /usr/bin/python3 scripts/peers/bench_augment_pillow.py SOURCE.png [--images N] [--json]

Prints one JSON object: {"pillow": version, "ops": {name: ms}, "transforms": {name: img/s}},
measured in CPU time of this process (one core; steady when other work shares the machine).
The train transform follows deit3-jax's pipeline with timm's semantics (RandomResizedCrop,
flip, RandAugment rand-m9-mstd0.5-inc1 or 3a, ColorJitter, RandomErasing, to array), written
here with Pillow + numpy because timm/torchvision are not installed from Debian.
"""
import json
import math
import os
import random
import sys
import time

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

FILL = (123, 116, 103)
BIL, BIC = Image.BILINEAR, Image.BICUBIC


def timed(fn, min_time=0.3, rounds=3):
    """Best of `rounds` mean CPU times (ms) of this process: steady under a shared machine."""
    for _ in range(5):
        fn()
    best = float("inf")
    for _ in range(rounds):
        n, t0 = 0, time.process_time()
        while True:
            fn()
            n += 1
            dt = time.process_time() - t0
            if dt >= min_time and n >= 10:
                break
        best = min(best, dt / n * 1000.0)
    return best


def affine(img, m, resample):
    return img.transform(img.size, Image.AFFINE, m, resample=resample, fillcolor=FILL)


def op_table(img):
    w, h = img.size
    return {
        "AutoContrast": lambda: ImageOps.autocontrast(img),
        "Equalize": lambda: ImageOps.equalize(img),
        "Invert": lambda: ImageOps.invert(img),
        "Posterize": lambda: ImageOps.posterize(img, 2),
        "Solarize": lambda: ImageOps.solarize(img, 128),
        "SolarizeAdd": lambda: img.point([min(255, i + 99) if i < 128 else i for i in range(256)] * 3),
        "Color": lambda: ImageEnhance.Color(img).enhance(1.81),
        "Contrast": lambda: ImageEnhance.Contrast(img).enhance(1.81),
        "Brightness": lambda: ImageEnhance.Brightness(img).enhance(1.81),
        "Sharpness": lambda: ImageEnhance.Sharpness(img).enhance(1.81),
        "Desaturate": lambda: ImageEnhance.Color(img).enhance(0.0),
        "GaussianBlur": lambda: img.filter(ImageFilter.GaussianBlur(1.0)),
        "Rotate-bilinear": lambda: img.rotate(27, resample=BIL, fillcolor=FILL),
        "Rotate-bicubic": lambda: img.rotate(27, resample=BIC, fillcolor=FILL),
        "ShearX-bilinear": lambda: affine(img, (1, 0.27, 0, 0, 1, 0), BIL),
        "ShearX-bicubic": lambda: affine(img, (1, 0.27, 0, 0, 1, 0), BIC),
        "TranslateXRel-bicubic": lambda: affine(img, (1, 0, 0.3 * w, 0, 1, 0), BIC),
        "FlipLeftRight": lambda: img.transpose(Image.FLIP_LEFT_RIGHT),
    }


# --- the train transform, with timm / torchvision semantics ----------------------------------

def rrc(img, size):
    width, height = img.size
    area = height * width
    log_ratio = (math.log(3 / 4), math.log(4 / 3))
    for _ in range(10):
        target_area = area * random.uniform(0.08, 1.0)
        aspect = math.exp(random.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            i = random.randint(0, height - h)
            j = random.randint(0, width - w)
            break
    else:
        i, j, h, w = 0, 0, height, width
    return img.crop((j, i, j + w, i + h)).resize((size, size), BIC)


def negate(v):
    return -v if random.random() > 0.5 else v


def geo(img, kind, v):
    resample = random.choice((BIL, BIC))
    w, h = img.size
    if kind == "Rotate":
        return img.rotate(v, resample=resample, fillcolor=FILL)
    m = {
        "ShearX": (1, v, 0, 0, 1, 0),
        "ShearY": (1, 0, 0, v, 1, 0),
        "TranslateXRel": (1, 0, v * w, 0, 1, 0),
        "TranslateYRel": (1, 0, 0, 0, 1, v * h),
    }[kind]
    return affine(img, m, resample)


def solarize_add(img, add):
    lut = [min(255, i + add) if i < 128 else i for i in range(256)]
    return img.point(lut * 3)


def ra_op(img, name, m):
    lv = m / 10.0
    if name == "AutoContrast":
        return ImageOps.autocontrast(img)
    if name == "Equalize":
        return ImageOps.equalize(img)
    if name == "Invert":
        return ImageOps.invert(img)
    if name == "Rotate":
        return geo(img, "Rotate", negate(lv * 30.0))
    if name == "PosterizeIncreasing":
        bits = 4 - int(lv * 4)
        return img if bits >= 8 else ImageOps.posterize(img, bits)
    if name == "SolarizeIncreasing":
        return ImageOps.solarize(img, 256 - min(256, int(lv * 256)))
    if name == "SolarizeAdd":
        return solarize_add(img, min(128, int(lv * 110)))
    if name.endswith("Increasing"):
        f = max(0.1, 1.0 + negate(lv * 0.9))
        enh = {"Color": ImageEnhance.Color, "Contrast": ImageEnhance.Contrast,
               "Brightness": ImageEnhance.Brightness, "Sharpness": ImageEnhance.Sharpness}
        return enh[name[: -len("Increasing")]](img).enhance(f)
    if name in ("ShearX", "ShearY"):
        return geo(img, name, negate(lv * 0.3))
    return geo(img, name, negate(lv * 0.45))


RA_OPS = ["AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing",
          "SolarizeIncreasing", "SolarizeAdd", "ColorIncreasing", "ContrastIncreasing",
          "BrightnessIncreasing", "SharpnessIncreasing", "ShearX", "ShearY", "TranslateXRel",
          "TranslateYRel"]


def rand_augment(img):
    for name in np.random.choice(RA_OPS, 2):
        if random.random() > 0.5:
            continue
        m = max(0.0, min(random.gauss(9, 0.5), 10.0))
        img = ra_op(img, name, m)
    return img


def three_augment(img):
    k = random.randrange(3)
    if k == 0:
        return ImageOps.solarize(img, 128)
    if k == 1:
        return ImageEnhance.Color(img).enhance(0.0)
    return img.filter(ImageFilter.GaussianBlur(radius=random.uniform(0.1, 2.0)))


def color_jitter(img, x):
    fs = [random.uniform(max(0, 1 - x), 1 + x) for _ in range(3)]
    for k in np.random.permutation(4):
        if k == 0:
            img = ImageEnhance.Brightness(img).enhance(fs[0])
        elif k == 1:
            img = ImageEnhance.Contrast(img).enhance(fs[1])
        elif k == 2:
            img = ImageEnhance.Color(img).enhance(fs[2])
    return img


MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def random_erasing(arr, p):
    if random.random() >= p:
        return arr
    h_img, w_img = arr.shape[:2]
    area = h_img * w_img
    for _ in range(10):
        ea = area * random.uniform(0.02, 0.33)
        ar = math.exp(random.uniform(math.log(0.3), math.log(3.3)))
        h = int(round(math.sqrt(ea * ar)))
        w = int(round(math.sqrt(ea / ar)))
        if h < h_img and w < w_img:
            i = random.randint(0, h_img - h)
            j = random.randint(0, w_img - w)
            z = np.random.standard_normal((h, w, 3))
            arr = arr.copy()
            arr[i:i + h, j:j + w] = np.clip(np.rint((MEAN + STD * z) * 255), 0, 255)
            return arr
    return arr


def train_transform(img, aa, jitter, erasing, size=224):
    img = rrc(img, size)
    if random.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    img = aa(img)
    if jitter > 0:
        img = color_jitter(img, jitter)
    arr = np.asarray(img)
    if erasing > 0:
        arr = random_erasing(arr, erasing)
    return arr


def main():
    args = sys.argv[1:]
    src = Image.open(args[0]).convert("RGB")
    n = int(args[args.index("--images") + 1]) if "--images" in args else 300
    big = src.resize((500, 375), BIC)
    img224 = src.resize((224, 224), BIC)
    random.seed(0)
    np.random.seed(0)
    ops = {name: timed(fn) for name, fn in op_table(img224).items()}
    ops["Resize-500x375-to-224-bicubic"] = timed(lambda: big.resize((224, 224), BIC))
    ops["RandomResizedCrop-224"] = timed(lambda: rrc(big, 224))
    transforms = {}
    for name, aa, jitter, erasing in [
        ("rand-m9-mstd0.5-inc1 (DeiT)", rand_augment, 0.0, 0.25),
        ("3a + jitter 0.3 (DeiT-III)", three_augment, 0.3, 0.0),
    ]:
        for _ in range(20):
            train_transform(big, aa, jitter, erasing)
        t0 = time.process_time()
        for _ in range(n):
            train_transform(big, aa, jitter, erasing)
        transforms[name] = n / (time.process_time() - t0)
    import PIL
    print(json.dumps({"pillow": PIL.__version__, "ops": ops, "transforms": transforms}))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()

#!/usr/bin/env python3
"""Extra reference images for tests/augment, made with Pillow (Debian's python3-pil 9.4; the
resize, affine, enhance, point-op and box-blur algorithms are those of Pillow 12.3 used for the
main reference set) on non-square images and argument values beyond the reference manifest.

    /usr/bin/python3 scripts/make_augment_fixtures.py

Writes tests/fixtures/augment/extra/{manifest.json, *.png}. Each case names the operation the
way the TypeScript test replays it.
"""
import json
import os

import numpy as np
import PIL
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SRC = os.path.join(ROOT, "tests/fixtures/augment/reference/source.png")
OUT = os.path.join(ROOT, "tests/fixtures/augment/extra")

FILTERS = {
    "nearest": Image.NEAREST, "box": Image.BOX, "bilinear": Image.BILINEAR,
    "hamming": Image.HAMMING, "bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS,
}


def timm_op(img, name, args, resample, fill):
    """The timm NAME_TO_OP functions, as Pillow calls."""
    r = FILTERS[resample] if resample else None
    w, h = img.size
    aff = lambda m: img.transform(img.size, Image.AFFINE, m, resample=r, fillcolor=tuple(fill))
    if name == "AutoContrast":
        return ImageOps.autocontrast(img)
    if name == "Equalize":
        return ImageOps.equalize(img)
    if name == "Invert":
        return ImageOps.invert(img)
    if name == "Rotate":
        return img.rotate(args[0], resample=r, fillcolor=tuple(fill))
    if name.startswith("Posterize"):
        return img if args[0] >= 8 else ImageOps.posterize(img, args[0])
    if name.startswith("Solarize") and name != "SolarizeAdd":
        return ImageOps.solarize(img, args[0])
    if name == "SolarizeAdd":
        lut = [min(255, i + args[0]) if i < 128 else i for i in range(256)]
        return img.point(lut * 3)
    for enh in ("Color", "Contrast", "Brightness", "Sharpness"):
        if name.startswith(enh):
            return getattr(ImageEnhance, enh)(img).enhance(args[0])
    if name == "ShearX":
        return aff((1, args[0], 0, 0, 1, 0))
    if name == "ShearY":
        return aff((1, 0, 0, args[0], 1, 0))
    if name == "TranslateX":
        return aff((1, 0, args[0], 0, 1, 0))
    if name == "TranslateY":
        return aff((1, 0, 0, 0, 1, args[0]))
    if name == "TranslateXRel":
        return aff((1, 0, args[0] * w, 0, 1, 0))
    if name == "TranslateYRel":
        return aff((1, 0, 0, 0, 1, args[0] * h))
    if name == "Desaturate":
        return ImageEnhance.Color(img).enhance(min(1.0, max(0.0, 1.0 - args[0])))
    if name == "GaussianBlur":
        return img.filter(ImageFilter.GaussianBlur(radius=args[0]))
    raise ValueError(name)


def reflect_crop(img, top, left, w, h):
    a = np.asarray(img)
    pad = max(0, -top, -left, top + h - a.shape[0], left + w - a.shape[1])
    p = np.pad(a, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    return Image.fromarray(p[top + pad:top + pad + h, left + pad:left + pad + w])


def cases():
    fill = [123, 116, 103]
    out = []
    # Boxes as fractions of the source size (the test reads the absolute box per source).
    for size, box in [((40, 23), None), ((150, 90), None), ((20, 31), None), ((97, 65), None),
                      ((64, 48), (0.05, 0.05, 0.757, 0.9)), ((33, 57), (0.15, 0, 0.9, 1)),
                      ((30, 20), (0.003, 0.016, 0.999, 0.991))]:
        for f in FILTERS:
            out.append({"kind": "resize", "size": list(size), "resample": f, "box_frac": box})
    for angle in [0, 90, 180, 270, -90, 27, -13.5, 45.7, 123.4, 359.9, 720.5]:
        for r in ("nearest", "bilinear", "bicubic"):
            out.append({"kind": "op", "op": "Rotate", "args": [angle], "resample": r, "fill": fill})
    geo = [("ShearX", [0.3]), ("ShearX", [-0.11]), ("ShearY", [0.27]), ("ShearY", [-0.3]),
           ("TranslateXRel", [-0.45]), ("TranslateYRel", [0.2]), ("TranslateX", [13.7]),
           ("TranslateY", [-6.2])]
    for name, args in geo:
        for r in ("bilinear", "bicubic"):
            out.append({"kind": "op", "op": name, "args": args, "resample": r, "fill": [7, 200, 33]})
    for m in [[0.8, 0.3, 5.5, -0.25, 1.1, -3.0], [1.7, 0, -20, 0, 0.6, 4.25], [-1, 0, 66, 0, 1, 0]]:
        for r in ("nearest", "bilinear", "bicubic"):
            out.append({"kind": "affine", "matrix": m, "resample": r, "fill": [250, 0, 128]})
    point = [("AutoContrast", []), ("Equalize", []), ("Invert", [])]
    point += [("Posterize", [b]) for b in (0, 1, 3, 6, 7, 8)]
    point += [("Solarize", [t]) for t in (0, 1, 77, 200, 256)]
    point += [("SolarizeAdd", [a]) for a in (0, 33, 110, 128)]
    for enh in ("Color", "Contrast", "Brightness", "Sharpness"):
        point += [(enh, [f]) for f in (0.0, 0.1, 0.55, 1.0, 1.37, 1.9, 3.2)]
    point += [("Desaturate", [v]) for v in (0.5, 0.93, 1.0)]
    point += [("GaussianBlur", [r]) for r in (0.1, 0.35, 1.0, 1.734, 2.0, 4.6)]
    for name, args in point:
        out.append({"kind": "op", "op": name, "args": args, "resample": None, "fill": fill})
    for t in ("flip_lr", "flip_tb", "rot90", "rot180", "rot270"):
        out.append({"kind": "transpose", "method": t})
    out.append({"kind": "grayscale"})
    out.append({"kind": "boxblur", "radius": 2.5})
    out.append({"kind": "boxblur", "radius": 0.6})
    # Windows wider than the image (Pillow's edgeA > edgeB branch).
    out.append({"kind": "boxblur", "radius": 40.3})
    out.append({"kind": "op", "op": "GaussianBlur", "args": [30], "resample": None, "fill": [0, 0, 0]})
    for top, left, w, h in [(-4, -4, 20, 30), (10, 3, 40, 25), (-7, 30, 50, 12)]:
        out.append({"kind": "reflect_crop", "top": top, "left": left, "w": w, "h": h})
    # torchvision's resized_crop on PIL (crop, then resize), as RandomResizedCrop applies it.
    for region, size in [((3, 5, 30, 28), 24), ((0, 0, 38, 45), 32), ((10, 20, 11, 9), 16)]:
        out.append({"kind": "crop_resize", "region": list(region), "size": size})
    # deit3-jax's test transform: Resize(int(size / ratio)) then CenterCrop(size).
    for size, ratio in [(32, 0.875), (24, 1.0), (21, 0.9), (40, 1.0)]:
        out.append({"kind": "test_transform", "image_size": size, "ratio": ratio})
    return out


def tv_resize_short(img, size):
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    return img if (new_w, new_h) == (w, h) else img.resize((new_w, new_h), Image.BICUBIC)


def tv_center_crop(img, size):
    w, h = img.size
    if size > w or size > h:
        raise ValueError("fixture cases keep the crop inside the image")
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return img.crop((left, top, left + size, top + size))


def run(img, c):
    k = c["kind"]
    if k == "resize":
        return img.resize(tuple(c["size"]), FILTERS[c["resample"]],
                          box=tuple(c["box"]) if c["box"] else None)
    if k == "op":
        return timm_op(img, c["op"], c["args"], c["resample"], c["fill"])
    if k == "affine":
        return img.transform(img.size, Image.AFFINE, tuple(c["matrix"]),
                             resample=FILTERS[c["resample"]], fillcolor=tuple(c["fill"]))
    if k == "transpose":
        t = {"flip_lr": Image.FLIP_LEFT_RIGHT, "flip_tb": Image.FLIP_TOP_BOTTOM,
             "rot90": Image.ROTATE_90, "rot180": Image.ROTATE_180, "rot270": Image.ROTATE_270}
        return img.transpose(t[c["method"]])
    if k == "grayscale":
        return img.convert("L").convert("RGB")
    if k == "boxblur":
        return img.filter(ImageFilter.BoxBlur(c["radius"]))
    if k == "crop_resize":
        left, top, w, h = c["region"]
        size = c["size"]
        return img.crop((left, top, left + w, top + h)).resize((size, size), Image.BICUBIC)
    if k == "test_transform":
        size = c["image_size"]
        return tv_center_crop(tv_resize_short(img, int(size / c["ratio"])), size)
    if k == "reflect_crop":
        return reflect_crop(img, c["top"], c["left"], c["w"], c["h"])
    raise ValueError(k)


def main():
    os.makedirs(OUT, exist_ok=True)
    base = Image.open(SRC).convert("RGB")
    # Non-square inputs: a landscape and a portrait image, plus a low-contrast one that
    # exercises equalize/autocontrast edge cases (few distinct levels).
    sources = {
        "land": base.resize((67, 45), Image.BICUBIC, box=(0, 10, 96, 74)),
        # Degenerate sizes: every edge rule at once.
        "tiny": base.resize((3, 2), Image.BILINEAR),
        "dot": base.resize((1, 1), Image.BOX),
        "port": base.crop((20, 5, 58, 64)),
        "flat": ImageOps.posterize(base.resize((41, 29), Image.BILINEAR), 2).point(
            lambda v: 100 + v // 8),
    }
    manifest = {"pillow": PIL.__version__, "sources": {}, "cases": []}
    for name, img in sources.items():
        fn = f"src-{name}.png"
        img.save(os.path.join(OUT, fn))
        manifest["sources"][name] = fn
    for i, case in enumerate(cases()):
        for name, img in sources.items():
            c = case
            if name == "flat" and c["kind"] != "op":
                continue
            if name in ("tiny", "dot") and c["kind"] in ("reflect_crop", "crop_resize",
                                                           "test_transform"):
                continue
            if c["kind"] == "resize":
                f = c["box_frac"]
                w, h = img.size
                box = [round(f[0] * w, 2), round(f[1] * h, 2), round(f[2] * w, 2),
                       round(f[3] * h, 2)] if f else None
                c = dict((k, v) for k, v in c.items() if k != "box_frac")
                c["box"] = box
            try:
                res = run(img, c)
            except ValueError as e:
                raise SystemExit(f"case {c}: {e}")
            fn = f"{i:03d}-{name}.png"
            res.save(os.path.join(OUT, fn), optimize=True)
            manifest["cases"].append(dict(c, source=name, file=fn))
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=0)
    print(f"wrote {len(manifest['cases'])} cases to {OUT}")


if __name__ == "__main__":
    main()

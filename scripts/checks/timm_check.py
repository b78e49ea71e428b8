"""timm-side checks for the timm layout tests (run with the peer venv's python: timm 1.x, torch).

  make NAME OUT.pth [KWARGS_JSON]
      timm.create_model(NAME, **KWARGS) with random weights, saved with torch.save. Layer-scale
      gammas and every pos_embed row (a class-token row included) are randomized too, so that a
      converter that drops or misplaces them changes the logits; linear weights get variance
      1/fan_in, so that activations reach GELU's curved range (as in trained weights).
  eval NAME PTH IMAGE_DIR [KWARGS_JSON]
      timm's logits on the KEY.png / KEY.cls files of IMAGE_DIR (timm's eval transform at crop
      ratio 1), printed as JSON: the original's BCE loss, top-1 and the sample count.
  check NAME PTH [KWARGS_JSON] [--same-as REF.pth] [--images IMAGES.f32 --out LOGITS.f32]
      model.load_state_dict(torch.load(PTH, weights_only=True), strict=True); with --same-as,
      every tensor bit-identical to REF's (same keys); with --images (float32 NHWC, normalized,
      shape given by the model), the logits written as float32. Prints "ok" and the key count.
"""
import json
import sys

import torch
import timm


def make(name, out, kwargs):
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, **kwargs)
    sd = model.state_dict()
    g = torch.Generator().manual_seed(1)
    for k, v in sd.items():
        if k.endswith(("ls1.gamma", "ls2.gamma")):
            v.copy_(0.5 + 0.2 * torch.randn(v.shape, generator=g))
        elif k == "pos_embed" or k == "cls_token":
            v.copy_(0.1 * torch.randn(v.shape, generator=g))
        elif k.endswith(("qkv.weight", "proj.weight", "fc1.weight", "fc2.weight", "head.weight")):
            # Unit-variance pre-activations (timm's init gives ~0.2), so that GELU's tanh and
            # erf forms differ as they do in trained weights.
            v.copy_(torch.randn(v.shape, generator=g) / v.shape[1] ** 0.5)
        elif k.endswith("bias"):
            v.copy_(0.02 * torch.randn(v.shape, generator=g))
    torch.save(sd, out)
    print(len(sd))


def check(name, path, kwargs, same_as=None, images=None, out=None):
    model = timm.create_model(name, pretrained=False, **kwargs).eval()
    sd = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(sd, strict=True)
    if same_as:
        ref = torch.load(same_as, map_location="cpu", weights_only=True)
        if list(ref.keys()) != list(sd.keys()):
            missing = set(ref) ^ set(sd)
            if missing:
                raise SystemExit(f"keys differ: {sorted(missing)}")
        for k, v in ref.items():
            w = sd[k]
            if v.shape != w.shape or v.dtype != w.dtype:
                raise SystemExit(f"{k}: {tuple(v.shape)} {v.dtype} vs {tuple(w.shape)} {w.dtype}")
            if not torch.equal(v.view(torch.int32) if v.dtype == torch.float32 else v,
                               w.view(torch.int32) if w.dtype == torch.float32 else w):
                raise SystemExit(f"{k}: values differ (max {float((v - w).abs().max())})")
    if images:
        size = model.patch_embed.img_size
        raw = open(images, "rb").read()
        x = torch.frombuffer(bytearray(raw), dtype=torch.float32)
        x = x.reshape(-1, size[0], size[1], 3).permute(0, 3, 1, 2).contiguous()
        with torch.no_grad():
            logits = model(x).float().contiguous()
        open(out, "wb").write(logits.numpy().tobytes())
    print("ok", len(sd))


def evaluate(name, path, image_dir, kwargs):
    """timm's logits on IMAGE_DIR's KEY.png + KEY.cls (sorted by key), with timm's own eval
    preprocessing for the original's config (crop ratio 1: resize, center crop, normalize with
    ImageNet mean/std); the original's BCE loss (mean over classes, then samples) and top-1."""
    import os

    from PIL import Image
    from timm.data import create_transform, resolve_data_config

    model = timm.create_model(name, pretrained=False, **kwargs).eval()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    cfg = resolve_data_config({"crop_pct": 1.0, "interpolation": "bicubic"}, model=model)
    transform = create_transform(**cfg)
    keys = sorted(f[:-4] for f in os.listdir(image_dir) if f.endswith(".png"))
    x = torch.stack([transform(Image.open(f"{image_dir}/{k}.png").convert("RGB")) for k in keys])
    labels = torch.tensor([int(open(f"{image_dir}/{k}.cls").read()) for k in keys])
    with torch.no_grad():
        logits = model(x)
    target = torch.nn.functional.one_hot(labels, logits.shape[1]).float()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    acc1 = (logits.argmax(-1) == labels).float().mean()
    print(json.dumps({"loss": float(loss.mean(-1).mean()), "acc1": float(acc1), "samples": len(keys)}))


def main(argv):
    cmd = argv[1]
    if cmd == "make":
        make(argv[2], argv[3], json.loads(argv[4]) if len(argv) > 4 else {})
    elif cmd == "check":
        rest = argv[4:]
        kwargs = {}
        if rest and not rest[0].startswith("--"):
            kwargs = json.loads(rest.pop(0))
        opts = dict(zip(rest[::2], rest[1::2]))
        check(argv[2], argv[3], kwargs, opts.get("--same-as"), opts.get("--images"),
              opts.get("--out"))
    elif cmd == "eval":
        evaluate(argv[2], argv[3], argv[4], json.loads(argv[5]) if len(argv) > 5 else {})
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)

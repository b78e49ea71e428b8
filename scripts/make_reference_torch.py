#!/usr/bin/env python3
"""Reference directories for `deno task doctor`, computed with PyTorch instead of jax/flax/optax.

An independent float32 re-implementation of the deit3-jax ViT (src/modeling.py), its training
loss (src/training.py) and the optax optimizers it uses (adamw, the modified LAMB of
src/utils.py, clip_by_global_norm, layer-wise lr decay via multi_transform). It writes the same
files as tests/fixtures/reference/vit-a: meta.json, params.msgpack, io.msgpack, grads.msgpack and
after3-{adamw,lamb,adamw-clip1-lrdecay0.75}.msgpack, in Flax `msgpack_serialize` format.

Before writing anything it recomputes the flax-made reference (default tests/fixtures/reference/
vit-a) from that reference's own params and batch, and refuses to go on unless logits, loss,
every gradient and all three 3-step trajectories agree within --tolerance: that is what shows
this script implements the same math as flax/optax.

Usage (Debian python3-torch, python3-msgpack, python3-numpy):
  /usr/bin/python3 scripts/make_reference_torch.py                 # validate, then write all
  /usr/bin/python3 scripts/make_reference_torch.py --only vit-b-ls # validate, then one config
  /usr/bin/python3 scripts/make_reference_torch.py --validate-only
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile

import msgpack
import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE_ROOT = os.path.join(ROOT, "tests", "fixtures", "reference")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LABEL_SMOOTHING = 0.1
LEARNING_RATE = 1e-3
ADAM_B1, ADAM_B2, ADAM_EPS = 0.9, 0.999, 1e-8
WEIGHT_DECAY = 0.05

# name -> (optimizer, clip_grad, lr_decay), as deno's lib/train/doctor.ts TRAJECTORIES.
TRAJECTORIES = {
    "adamw": ("adamw", 0.0, 1.0),
    "lamb": ("lamb", 0.0, 1.0),
    "adamw-clip1-lrdecay0.75": ("adamw", 1.0, 0.75),
}

# The references this script generates. Field names are deit3-jax's flags, as in vit-a.
CONFIGS = {
    "vit-gap-sincos": {
        "config": {
            "layers": 3, "dim": 48, "heads": 3, "labels": 7, "layerscale": False,
            "patch_size": 8, "image_size": 32, "posemb": "sincos2d", "pooling": "gap",
        },
        "batch": 3,
        "seed": 1,
    },
    "vit-b-ls": {
        "config": {
            "layers": 1, "dim": 32, "heads": 2, "labels": 5, "layerscale": True,
            "patch_size": 2, "image_size": 8, "posemb": "learnable", "pooling": "cls",
        },
        "batch": 5,
        "seed": 2,
    },
    # One head (head_dim = dim), 16 labels, fixed sincos2d with a CLS token and LayerScale.
    "vit-h1-sincos-cls": {
        "config": {
            "layers": 2, "dim": 24, "heads": 1, "labels": 16, "layerscale": True,
            "patch_size": 4, "image_size": 16, "posemb": "sincos2d", "pooling": "cls",
        },
        "batch": 4,
        "seed": 3,
    },
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--validate", default=os.path.join(REFERENCE_ROOT, "vit-a"),
                    help="flax-made reference directory to reproduce first")
    ap.add_argument("--tolerance", type=float, default=1e-5)
    ap.add_argument("--out-root", default=REFERENCE_ROOT)
    ap.add_argument("--only", action="append", choices=sorted(CONFIGS),
                    help="generate only this config (repeatable)")
    ap.add_argument("--validate-only", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)  # one summation order, so reruns write identical bytes

    errors = validate(args.validate)
    for k, v in errors.items():
        print(f"validate {os.path.basename(args.validate)}: {k:32s} max |err| {v:.3e}")
    worst = max(errors.values())
    if not worst <= args.tolerance:
        print(f"error: {args.validate} not reproduced within {args.tolerance} "
              f"(worst {worst:.3e}); nothing written", file=sys.stderr)
        return 1
    if args.validate_only:
        return 0

    summary = ", ".join(f"{k} {v:.1e}" for k, v in errors.items())
    for name in args.only or sorted(CONFIGS):
        spec = CONFIGS[name]
        out = os.path.join(args.out_root, name)
        f64 = generate(out, spec, f"validated against {os.path.basename(args.validate)} "
                                  f"(flax/optax) to max |err|: {summary}")
        print(f"wrote {out} ({dir_size(out) / 1e3:.0f} kB); float64 recomputation differs "
              f"by at most {f64:.1e}")
    return 0


# ---------------------------------------------------------------------------------------------
# Validation and generation


def validate(ref_dir: str) -> dict[str, float]:
    """Recomputes a reference directory from its params and batch; returns max |err| per item."""
    meta = read_json(os.path.join(ref_dir, "meta.json"))
    cfg = meta["config"]
    smoothing = meta.get("label_smoothing", LABEL_SMOOTHING)
    params = to_torch(read_msgpack(os.path.join(ref_dir, "params.msgpack")))
    io = read_msgpack(os.path.join(ref_dir, "io.msgpack"))
    for key in ("images", "labels", "logits", "loss"):
        if key not in io:
            raise SystemExit(f"error: {ref_dir}/io.msgpack has no '{key}'")
    images, labels = torch.from_numpy(np.array(io["images"])), torch.from_numpy(np.array(io["labels"]))

    logits, loss = forward_and_loss(cfg, params, images, labels, smoothing)
    errors = {
        "logits": max_abs(logits, io["logits"]),
        "loss": max_abs(loss, io["loss"]),
        "grads": max_abs_tree(gradients(cfg, params, images, labels, smoothing),
                              read_msgpack(os.path.join(ref_dir, "grads.msgpack")), "grads"),
    }
    for name, (kind, clip, decay) in TRAJECTORIES.items():
        ref = read_msgpack(os.path.join(ref_dir, f"after3-{name}.msgpack"))
        after = train_steps(cfg, params, images, labels, smoothing, kind, clip, decay, 3)
        errors[f"after3-{name}"] = max_abs_tree(after, ref, f"after3-{name}")
    return errors


def generate(out_dir: str, spec: dict, validation_note: str) -> float:
    """Writes one reference directory (atomically). Returns max |f32 - f64| over all outputs."""
    cfg, batch = spec["config"], spec["batch"]
    gen = torch.Generator().manual_seed(spec["seed"])
    params = init_params(cfg, gen)
    size = cfg["image_size"]
    images = torch.randint(0, 256, (batch, 3, size, size), generator=gen, dtype=torch.uint8)
    labels = torch.randint(0, cfg["labels"], (batch,), generator=gen, dtype=torch.int32)

    outputs = compute_all(cfg, params, images, labels, torch.float32)
    # Same math in float64: how far float32 rounding alone moves this reference.
    outputs64 = compute_all(cfg, params, images, labels, torch.float64)
    f64_gap = max(max_abs(a, b) for (_, a), (_, b) in zip(flatten(outputs), flatten(outputs64)))

    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}-", dir=os.path.dirname(out_dir))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        write_msgpack(os.path.join(tmp, "params.msgpack"), params)
        write_msgpack(os.path.join(tmp, "io.msgpack"), {
            "images": images, "labels": labels,
            "logits": outputs["logits"], "loss": outputs["loss"],
        })
        write_msgpack(os.path.join(tmp, "grads.msgpack"), outputs["grads"])
        for name in TRAJECTORIES:
            write_msgpack(os.path.join(tmp, f"after3-{name}.msgpack"), outputs[name])
        meta = {
            "config": cfg,
            "batch": batch,
            "label_smoothing": LABEL_SMOOTHING,
            "note": (
                "made by scripts/make_reference_torch.py with torch "
                f"{torch.__version__} (float32, seed {spec['seed']}), {validation_note}; "
                "3 steps, constant lr 1e-3, grads recomputed each step; weight decay on "
                f"kernels only; a float64 recomputation differs by at most {f64_gap:.1e}"
            ),
            "loss": float(outputs["loss"]),
        }
        with open(os.path.join(tmp, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1)
            f.write("\n")
        if os.path.exists(out_dir):
            shutil.rmtree(out_dir)
        os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return f64_gap


def compute_all(cfg, params, images, labels, dtype) -> dict:
    params = map_tree(lambda t: t.to(dtype), params)
    logits, loss = forward_and_loss(cfg, params, images, labels, LABEL_SMOOTHING)
    out = {
        "logits": logits.detach(), "loss": loss.detach(),
        "grads": gradients(cfg, params, images, labels, LABEL_SMOOTHING),
    }
    for name, (kind, clip, decay) in TRAJECTORIES.items():
        out[name] = train_steps(cfg, params, images, labels, LABEL_SMOOTHING, kind, clip, decay, 3)
    return out


def init_params(cfg: dict, gen: torch.Generator) -> dict:
    """deit3-jax's init: truncated normal (std 0.02) kernels, cls token and learnable wpe; zero
    biases; LayerNorm scale 1 / bias 0; LayerScale 1e-4. Keys in flax's tree order."""
    dim, heads, labels, ps = cfg["dim"], cfg["heads"], cfg["labels"], cfg["patch_size"]
    hd, grid = dim // heads, cfg["image_size"] // ps

    def tn(*shape):
        return truncated_normal(gen, shape, 0.02)

    def zeros(*shape):
        return torch.zeros(shape, dtype=torch.float32)

    def norm():
        return {"bias": zeros(dim), "scale": torch.ones(dim, dtype=torch.float32)}

    embed = {"wte": {"bias": zeros(dim), "kernel": tn(ps, ps, 3, dim)}}
    if cfg["pooling"] == "cls":
        embed["cls_token"] = tn(1, 1, dim)
    if cfg["posemb"] == "learnable":
        embed["wpe"] = tn(grid, grid, dim)
    model = {"embed": embed}
    for i in range(cfg["layers"]):
        layer = {
            "attn": {
                **{w: {"bias": zeros(heads, hd), "kernel": tn(dim, heads, hd)}
                   for w in ("wq", "wk", "wv")},
                "wo": {"bias": zeros(dim), "kernel": tn(heads, hd, dim)},
            },
            "ff": {
                "w1": {"bias": zeros(4 * dim), "kernel": tn(dim, 4 * dim)},
                "w2": {"bias": zeros(dim), "kernel": tn(4 * dim, dim)},
            },
            "norm1": norm(),
            "norm2": norm(),
        }
        if cfg["layerscale"]:
            layer["scale1"] = torch.full((dim,), 1e-4, dtype=torch.float32)
            layer["scale2"] = torch.full((dim,), 1e-4, dtype=torch.float32)
        model[f"layer_{i}"] = layer
    model["norm"] = norm()
    model["head"] = {"bias": zeros(labels), "kernel": tn(dim, labels)}
    return {"model": model}


def truncated_normal(gen: torch.Generator, shape, std: float) -> torch.Tensor:
    """jax.nn.initializers.truncated_normal: N(0,1) cut to [-2, 2], scaled by std / 0.8796..."""
    n = math.prod(shape)
    kept = torch.empty(0, dtype=torch.float64)
    while kept.numel() < n:
        z = torch.randn(2 * n + 16, generator=gen, dtype=torch.float64)
        kept = torch.cat([kept, z[z.abs() <= 2]])
    return (kept[:n] * (std / 0.87962566103423978)).to(torch.float32).reshape(shape)


# ---------------------------------------------------------------------------------------------
# Model (deit3-jax src/modeling.py, deterministic mode) and loss (src/training.py)


def forward_and_loss(cfg, params, images, labels, smoothing):
    logits = vit(cfg, params, normalize(images, leaf_dtype(params)))
    return logits, cross_entropy(logits, labels, cfg["labels"], smoothing)


def normalize(images: torch.Tensor, dtype) -> torch.Tensor:
    """uint8 NCHW -> NHWC float / 255 -> ImageNet (x - mean) / std."""
    x = images.permute(0, 2, 3, 1).to(dtype) / 255
    mean = torch.tensor(IMAGENET_MEAN, dtype=dtype)
    std = torch.tensor(IMAGENET_STD, dtype=dtype)
    return (x - mean) / std


def cross_entropy(logits, labels, num_labels, smoothing):
    """optax.softmax_cross_entropy vs optax.smooth_labels(one_hot), averaged over the batch."""
    onehot = torch.nn.functional.one_hot(labels.long(), num_labels).to(logits.dtype)
    target = (1.0 - smoothing) * onehot + smoothing / num_labels
    return (-(target * torch.log_softmax(logits, dim=-1)).sum(-1)).mean()


def vit(cfg, params, x):
    m = params["model"]
    dim = cfg["dim"]
    h = patch_embed(cfg, m["embed"], x)
    for i in range(cfg["layers"]):
        h = vit_layer(cfg, m[f"layer_{i}"], h)
    h = layer_norm(h, m["norm"])
    pooled = h[:, 0, :] if cfg["pooling"] == "cls" else h.mean(1)
    assert pooled.shape[-1] == dim
    return pooled @ m["head"]["kernel"] + m["head"]["bias"]


def patch_embed(cfg, e, x):
    """flax Conv(kernel = stride = patch, VALID) on NHWC, + position embeddings, + CLS."""
    b, ps, dim = x.shape[0], cfg["patch_size"], cfg["dim"]
    kernel = e["wte"]["kernel"].permute(3, 2, 0, 1)  # HWIO -> OIHW
    h = torch.nn.functional.conv2d(x.permute(0, 3, 1, 2), kernel, stride=ps)
    h = h.permute(0, 2, 3, 1) + e["wte"]["bias"]  # [B, gh, gw, dim]
    if cfg["posemb"] == "learnable":
        wpe = e["wpe"]
    else:
        wpe = sincos2d(h.shape[1], h.shape[2], dim).to(h.dtype)
    h = (h + wpe).reshape(b, -1, dim)
    if cfg["pooling"] == "cls":
        h = torch.cat([e["cls_token"].expand(b, 1, dim), h], dim=1)
    return h


def sincos2d(ncols: int, nrows: int, dim: int) -> torch.Tensor:
    """deit3-jax utils.fixed_sincos2d_embeddings, in float32 as jax computes it: [ncols, nrows,
    dim] = concat(sin x, cos x, sin y, cos y), x along axis 1 (nrows), y along axis 0."""
    q = dim // 4
    freqs = 1 / (10000 ** torch.linspace(0, 1, q, dtype=torch.float32))
    x = torch.outer(torch.arange(nrows, dtype=torch.float32), freqs)[None, :, :]
    y = torch.outer(torch.arange(ncols, dtype=torch.float32), freqs)[:, None, :]
    x, y = x.expand(ncols, nrows, q), y.expand(ncols, nrows, q)
    return torch.cat([x.sin(), x.cos(), y.sin(), y.cos()], dim=2)


def vit_layer(cfg, p, x):
    h = attention(cfg, p["attn"], layer_norm(x, p["norm1"]))
    x = x + (p["scale1"] * h if cfg["layerscale"] else h)
    h = feed_forward(p["ff"], layer_norm(x, p["norm2"]))
    return x + (p["scale2"] * h if cfg["layerscale"] else h)


def attention(cfg, p, x):
    """DenseGeneral q/k/v [dim, heads, hd]; q / sqrt(hd) before the dot; wo [heads, hd, dim]."""
    hd = cfg["dim"] // cfg["heads"]

    def proj(w):
        return torch.einsum("bnd,dhk->bnhk", x, w["kernel"]) + w["bias"]

    z = torch.einsum("bqhd,bkhd->bhqk", proj(p["wq"]) / hd**0.5, proj(p["wk"]))
    z = torch.einsum("bhqk,bkhd->bqhd", torch.softmax(z, dim=-1), proj(p["wv"]))
    return torch.einsum("bqhd,hdo->bqo", z, p["wo"]["kernel"]) + p["wo"]["bias"]


def feed_forward(p, x):
    h = gelu_tanh(x @ p["w1"]["kernel"] + p["w1"]["bias"])
    return h @ p["w2"]["kernel"] + p["w2"]["bias"]


def gelu_tanh(x):
    """flax nn.gelu (approximate=True)."""
    return x * (0.5 * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))))


def layer_norm(x, p, eps=1e-6):
    """flax nn.LayerNorm with use_fast_variance: var = max(0, E[x^2] - E[x]^2)."""
    mean = x.mean(-1, keepdim=True)
    var = torch.clamp((x * x).mean(-1, keepdim=True) - mean * mean, min=0)
    return (x - mean) * (torch.rsqrt(var + eps) * p["scale"]) + p["bias"]


# ---------------------------------------------------------------------------------------------
# Gradients and optimizers (optax order)


def gradients(cfg, params, images, labels, smoothing) -> dict:
    paths, leaves = zip(*flatten(params))
    leaves = [t.detach().clone().requires_grad_(True) for t in leaves]
    _, loss = forward_and_loss(cfg, unflatten(zip(paths, leaves)), images, labels, smoothing)
    grads = torch.autograd.grad(loss, leaves)
    return unflatten(zip(paths, [g.detach() for g in grads]))


def train_steps(cfg, params, images, labels, smoothing, kind, clip, lr_decay, steps) -> dict:
    """`steps` updates on one batch: [clip_by_global_norm] -> scale_by_adam ->
    add_decayed_weights (kernels) -> [LAMB trust ratio (kernels)] -> * -lr -> [layer-wise
    decay ** (layers - index)] -> apply_updates."""
    dtype = leaf_dtype(params)
    p = dict(flatten(params))
    mu = {k: torch.zeros_like(v) for k, v in p.items()}
    nu = {k: torch.zeros_like(v) for k, v in p.items()}
    b1, b2 = torch.tensor(ADAM_B1, dtype=dtype), torch.tensor(ADAM_B2, dtype=dtype)
    for t in range(1, steps + 1):
        g = dict(flatten(gradients(cfg, unflatten(p.items()), images, labels, smoothing)))
        if clip > 0:
            norm = torch.sqrt(sum((v * v).sum() for v in g.values()))
            if not norm < clip:
                g = {k: (v / norm) * clip for k, v in g.items()}
        for k in p:
            mu[k] = (1 - ADAM_B1) * g[k] + ADAM_B1 * mu[k]
            nu[k] = (1 - ADAM_B2) * (g[k] * g[k]) + ADAM_B2 * nu[k]
            mu_hat = mu[k] / (1 - b1**t)
            nu_hat = nu[k] / (1 - b2**t)
            u = mu_hat / (torch.sqrt(nu_hat) + ADAM_EPS)
            is_kernel = k[-1] == "kernel"
            if is_kernel:
                u = u + WEIGHT_DECAY * p[k]
            if kind == "lamb" and is_kernel:
                pn, un = torch.linalg.norm(p[k]), torch.linalg.norm(u)
                if pn != 0 and un != 0:
                    u = u * (pn / un)
            u = -LEARNING_RATE * u
            if lr_decay < 1:
                u = u * lr_decay ** (cfg["layers"] - layer_index(k, cfg["layers"]))
            p[k] = p[k] + u
    return unflatten(p.items())


def layer_index(path: tuple, layers: int) -> int:
    """deit3-jax get_layer_index_fn: embed -> 0, layer_i -> i + 1, everything else -> layers."""
    if path[0] == "model" and path[1].startswith("layer_"):
        return int(path[1][len("layer_"):]) + 1
    if path[0] == "model" and path[1] == "embed":
        return 0
    return layers


# ---------------------------------------------------------------------------------------------
# Flax msgpack (flax.serialization.msgpack_serialize / msgpack_restore)

EXT_NDARRAY = 1


def read_msgpack(path: str) -> dict:
    def ext_hook(code, data):
        if code != EXT_NDARRAY:
            raise SystemExit(f"error: {path}: unsupported msgpack ext type {code}")
        shape, dtype, raw = msgpack.unpackb(data, raw=False)
        return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)

    try:
        with open(path, "rb") as f:
            return msgpack.unpackb(f.read(), ext_hook=ext_hook, raw=False)
    except FileNotFoundError:
        raise SystemExit(f"error: reference file {path} is missing")


def write_msgpack(path: str, tree: dict) -> None:
    def default(x):
        if isinstance(x, torch.Tensor):
            x = x.detach().contiguous().numpy()
        if isinstance(x, np.ndarray):
            x = x.astype(x.dtype.newbyteorder("<"), copy=False)  # tobytes() is C order
            payload = msgpack.packb([list(x.shape), x.dtype.name, x.tobytes()],
                                    use_bin_type=True)
            return msgpack.ExtType(EXT_NDARRAY, payload)
        raise TypeError(f"{path}: cannot serialize {type(x).__name__}")

    with open(path, "wb") as f:
        f.write(msgpack.packb(sort_keys(tree), default=default, use_bin_type=True))


def sort_keys(tree):
    if isinstance(tree, dict):
        return {k: sort_keys(tree[k]) for k in sorted(tree)}
    return tree


# ---------------------------------------------------------------------------------------------
# Small helpers


def flatten(tree, prefix=()):
    if isinstance(tree, dict):
        out = []
        for k in tree:
            out.extend(flatten(tree[k], prefix + (k,)))
        return out
    return [(prefix, tree)]


def unflatten(items) -> dict:
    root: dict = {}
    for path, leaf in items:
        node = root
        for k in path[:-1]:
            node = node.setdefault(k, {})
        node[path[-1]] = leaf
    return root


def map_tree(fn, tree):
    return unflatten((k, fn(v)) for k, v in flatten(tree))


def to_torch(tree):
    return map_tree(lambda a: torch.from_numpy(np.array(a)), tree)


def leaf_dtype(params):
    return flatten(params)[0][1].dtype


def max_abs(a, b) -> float:
    a = a.detach().double().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, np.float64)
    b = b.detach().double().numpy() if isinstance(b, torch.Tensor) else np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise SystemExit(f"error: shapes {a.shape} and {b.shape} differ")
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def max_abs_tree(ours, ref, what: str) -> float:
    ours, ref = dict(flatten(ours)), dict(flatten(ref))
    if set(ours) != set(ref):
        diff = sorted(set(ours) ^ set(ref))
        raise SystemExit(f"error: {what}: parameter trees differ at {['.'.join(p) for p in diff]}")
    return max(max_abs(ours[k], ref[k]) for k in ours)


def read_json(path: str) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise SystemExit(f"error: reference file {path} is missing")


def dir_size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))


if __name__ == "__main__":
    sys.exit(main())

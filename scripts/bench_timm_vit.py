#!/usr/bin/env python3
"""timm's VisionTransformer train step on torch CPU: the peer of `deno task bench`'s train part.

Same step as ours (bench/train_step.ts): a fixed synthetic uint8 batch normalized in the step,
AdamW (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.05), cross-entropy with label
smoothing 0.1. LayerScale is timm's `init_values` (1e-4, as deit3-jax).

  bench_timm_vit.py --layers 4 --dim 64 --heads 4 --patch 4 --image 28 --labels 10 \
      --batch 128 --threads 1 [--layerscale] [--steps 5]

Prints one JSON object: torch and timm versions, img/s, ms/step, and the peak RSS of this process
(MiB, getrusage), so run each cell in its own process.
"""

import argparse
import json
import resource
import time

import torch
import torch.nn.functional as F


def main():
    ap = argparse.ArgumentParser()
    for name, default in [("layers", 4), ("dim", 64), ("heads", 4), ("patch", 4), ("image", 28),
                          ("labels", 10), ("batch", 128), ("threads", 1), ("steps", 5)]:
        ap.add_argument(f"--{name}", type=int, default=default)
    ap.add_argument("--layerscale", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import timm
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(img_size=args.image, patch_size=args.patch, num_classes=args.labels,
                              embed_dim=args.dim, depth=args.layers, num_heads=args.heads,
                              mlp_ratio=4.0, init_values=1e-4 if args.layerscale else None,
                              class_token=True, global_pool="token", drop_path_rate=0.0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.05)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.batch, 3, args.image, args.image), dtype=torch.uint8,
                           generator=g)
    labels = torch.arange(args.batch) % args.labels
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255

    def step():
        opt.zero_grad(set_to_none=True)
        x = (images.float() - mean) / std
        loss = F.cross_entropy(model(x), labels, label_smoothing=0.1)
        loss.backward()
        opt.step()
        return loss.item()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    s = (time.perf_counter() - t0) / args.steps
    print(json.dumps({
        "peer": "timm", "torch": torch.__version__, "timm": timm.__version__,
        "threads": args.threads, "batch": args.batch, "steps": args.steps,
        "img_per_s": round(args.batch / s, 2), "step_ms": round(s * 1e3, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


if __name__ == "__main__":
    main()

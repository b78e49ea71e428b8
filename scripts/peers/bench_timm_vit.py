#!/usr/bin/env python3
"""timm's VisionTransformer train step: the peer of `deno task bench`'s train part (torch CPU)
and of scripts/device/device_check.sh's train-step cells (CUDA).

Same step as ours (bench/train_step.ts): a fixed synthetic uint8 batch normalized in the step,
AdamW (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.05), cross-entropy with label
smoothing 0.1. LayerScale is timm's `init_values` (1e-4, as deit3-jax).

  bench_timm_vit.py --layers 4 --dim 64 --heads 4 --patch 4 --image 28 --labels 10 \
      --batch 128 --threads 1 [--layerscale] [--grad-ckpt] [--droppath 0.1] [--steps 5] \
      [--device cpu|cuda] [--dtype f32|tf32|bf16]

--dtype: f32 (plain f32 matmuls), tf32 (f32 with TF32 matmuls and convolutions, CUDA's fast
default for training), bf16 (bf16 autocast around forward and loss; params and AdamW in f32).
On CUDA, AdamW is the fused one (as notes/anchors.md measured timm) and each step ends with the
loss read back, which waits for the GPU.

Prints one JSON object: torch and timm versions, img/s, ms/step, CPU time per step (all threads of
the process: on a loaded machine this is what the step cost, whatever the wait), and the peak RSS
of this process (MiB, getrusage; on CUDA also the peak GPU memory), so run each cell in its own
process.
"""

import argparse
import contextlib
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
    ap.add_argument("--grad-ckpt", action="store_true",
                    help="timm's set_grad_checkpointing (each block recomputed in the backward)")
    ap.add_argument("--droppath", type=float, default=0.0)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--dtype", choices=["f32", "tf32", "bf16"], default="f32")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit("bench_timm_vit.py: --device cuda but torch sees no CUDA device")
    tf32 = args.dtype == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    import timm
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(img_size=args.image, patch_size=args.patch, num_classes=args.labels,
                              embed_dim=args.dim, depth=args.layers, num_heads=args.heads,
                              mlp_ratio=4.0, init_values=1e-4 if args.layerscale else None,
                              class_token=True, global_pool="token",
                              drop_path_rate=args.droppath).to(dev)
    model.set_grad_checkpointing(args.grad_ckpt)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.05, **({"fused": True} if cuda else {}))
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.batch, 3, args.image, args.image), dtype=torch.uint8,
                           generator=g).to(dev)
    labels = (torch.arange(args.batch) % args.labels).to(dev)
    mean = (torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255).to(dev)
    std = (torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255).to(dev)
    autocast = (torch.autocast(args.device, dtype=torch.bfloat16) if args.dtype == "bf16"
                else contextlib.nullcontext())

    def step():
        opt.zero_grad(set_to_none=True)
        x = (images.float() - mean) / std
        with autocast:
            loss = F.cross_entropy(model(x), labels, label_smoothing=0.1)
        loss.backward()
        opt.step()
        return loss.item()  # waits for the device

    t0 = time.perf_counter()
    step()  # warm-up
    warm = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        loss = step()
    s = (time.perf_counter() - t0) / args.steps
    cpu = (time.process_time() - c0) / args.steps
    out = {
        "peer": "timm", "torch": torch.__version__, "timm": timm.__version__,
        "device": torch.cuda.get_device_name() if cuda else "cpu", "dtype": args.dtype,
        "threads": args.threads, "batch": args.batch, "steps": args.steps,
        "img_per_s": round(args.batch / s, 2), "step_ms": round(s * 1e3, 2),
        "first_step_s": round(warm, 2), "loss": round(loss, 4),
        "cpu_ms_per_step": round(cpu * 1e3, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if cuda:
        out["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

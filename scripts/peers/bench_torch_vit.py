#!/usr/bin/python3
"""Peer benchmark: the tiny ViT train step of bench/train_step.ts in PyTorch (CPU).

Same config: 28x28 RGB u8 images, patch 4, dim 64, depth 4, heads 4 (separate q/k/v/out
projections), MLP 4x with tanh GELU, pre-norm LayerNorm (eps 1e-6), cls token, learnable
position embedding, 10 classes, batch 128, softmax cross-entropy with label smoothing 0.1,
AdamW (b1 0.9, b2 0.999, eps 1e-8, weight decay 0.05, lr 1e-3). Normalization of the u8
images happens inside the step, as in ours.

Prints one JSON object: img/s with 1 thread (the peer figure) and with all threads.
Run with Debian's python3-torch: /usr/bin/python3 scripts/peers/bench_torch_vit.py [--steps N]
"""

import argparse
import json
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

DIM, DEPTH, HEADS, PATCH, IMAGE, LABELS = 64, 4, 4, 4, 28, 10
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.wq, self.wk, self.wv = (nn.Linear(DIM, DIM) for _ in range(3))
        self.wo = nn.Linear(DIM, DIM)

    def forward(self, x):
        b, n, _ = x.shape
        hd = DIM // HEADS

        def split(t):
            return t.view(b, n, HEADS, hd).transpose(1, 2)

        q, k, v = split(self.wq(x)), split(self.wk(x)), split(self.wv(x))
        a = torch.softmax((q @ k.transpose(-1, -2)) * hd**-0.5, dim=-1)
        return self.wo((a @ v).transpose(1, 2).reshape(b, n, DIM))


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm1 = nn.LayerNorm(DIM, eps=1e-6)
        self.attn = Attention()
        self.norm2 = nn.LayerNorm(DIM, eps=1e-6)
        self.w1 = nn.Linear(DIM, 4 * DIM)
        self.w2 = nn.Linear(4 * DIM, DIM)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.w2(F.gelu(self.w1(self.norm2(x)), approximate="tanh"))


class ViT(nn.Module):
    def __init__(self):
        super().__init__()
        grid = IMAGE // PATCH
        self.wte = nn.Conv2d(3, DIM, PATCH, PATCH)
        self.cls_token = nn.Parameter(torch.randn(1, 1, DIM) * 0.02)
        self.wpe = nn.Parameter(torch.randn(1, grid * grid, DIM) * 0.02)
        self.layers = nn.ModuleList(Layer() for _ in range(DEPTH))
        self.norm = nn.LayerNorm(DIM, eps=1e-6)
        self.head = nn.Linear(DIM, LABELS)

    def forward(self, images_u8):
        x = (images_u8.float() / 255 - MEAN) / STD
        x = self.wte(x).flatten(2).transpose(1, 2) + self.wpe
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        for layer in self.layers:
            x = layer(x)
        return self.head(self.norm(x)[:, 0])


def bench(threads, batch_size, steps):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = ViT()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.05)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch_size, 3, IMAGE, IMAGE), dtype=torch.uint8, generator=g)
    labels = torch.arange(batch_size) % LABELS

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(images), labels, label_smoothing=0.1)
        loss.backward()
        opt.step()
        return loss.item()

    step()  # warm-up (allocator, kernels)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    s = time.perf_counter() - t0
    return {"img_per_s": steps * batch_size / s, "step_ms": s / steps * 1000}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    one = bench(1, args.batch, args.steps)
    full = bench(cores, args.batch, args.steps)
    print(json.dumps({
        "torch": torch.__version__,
        "batch": args.batch,
        "steps": args.steps,
        "threads_1": one,
        f"threads_{cores}": full,
        "cores": cores,
    }))


if __name__ == "__main__":
    main()

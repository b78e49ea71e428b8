#!/usr/bin/env python3
"""JAX side of the PJRT benchmarks and checks, for a machine with JAX (the GPU test machine has
JAX 0.11 with the CUDA plugin; a CPU-only jaxlib works too).

Subcommands (each prints one JSON object on stdout):

  train-step CONFIG.json [--batch N] [--steps S] [--precision f32|bf16] [--grad-ckpt]
             [--matmul-precision default|highest]
      The original stack's training step (flax ViT as deit3-jax's modeling.py, optax AdamW/LAMB,
      in-step normalization, Mixup/CutMix applied in the step from host-drawn parameters as ours
      does), jitted with the state donated. Reports compile seconds, ms/step and img/s.

  time-mlir PROGRAM.mlir [--steps S]
      Our program (`deno task export-hlo CONFIG --batch N --out PROGRAM.mlir`) compiled by the
      same XLA client and run the same way: donated parameters and optimizer state, each step's
      results fed back. Run it next to `train-step` with the same config and batch for the ratio.

  compare CONFIG.json PROGRAM.mlir [--steps S] [--rounds R] [--set KEY=VALUE ...]
      Both of the above in one process (batch, precision and remat read from the program's
      header), timed alternately R times; reports the medians and ours/JAX throughput, and
      XLA's cost analysis of both compiled steps (flops, bytes accessed). `--set` overrides a
      config key for the JAX side, as `deno task export-hlo CONFIG --KEY VALUE` did for ours
      (e.g. `--set patch-size=4`); a program whose parameter count differs from the JAX
      model's is refused, naming both.

  cost PROGRAM.mlir [PROGRAM.mlir ...]
      XLA's cost analysis of each program as compiled for this client: flops and bytes accessed
      (tests/backend/stablehlo/xla_test.ts checks that a step's bytes grow linearly with depth).

  run-mlir JOBS_DIR
      Runs programs once for tests (tests/backend/stablehlo/xla_test.ts): every JOBS_DIR/*/
      holds program.mlir and in_R_I.bin (replica R, argument I, raw little-endian bytes); the
      results go to out_R_J.bin with outputs.json ([{shape, dtype}]) beside them.

The argument and result types are read from the `@main` signature; multi-replica programs
(`mhlo.num_replicas` > 1) need that many devices (on CPU set
XLA_FLAGS=--xla_force_host_platform_device_count=N).
"""

import argparse
import functools
import glob
import json
import os
import re
import sys
import time

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np

DTYPES = {
    "f32": np.float32,
    "bf16": ml_dtypes.bfloat16,
    "i32": np.int32,
    "ui32": np.uint32,
    "ui8": np.uint8,
    "i1": np.bool_,
}
IR_DTYPE = {"f32": "f32", "bf16": "bf16", "i32": "i32", "ui32": "u32", "ui8": "u8", "i1": "bool"}
TENSOR = r"tensor<([0-9x]*?)(f32|bf16|i32|ui32|ui8|i1)>"


# ----------------------------------------------------------------------------- our programs


def signature(text):
    """(args, results, num_replicas, names): args are (shape, dtype, alias-or-None)."""
    main = next(l for l in text.splitlines() if "func.func public @main(" in l)
    params, results = main.split(") -> (", 1)
    args = []
    for m in re.finditer(r"%arg\d+: " + TENSOR + r"( \{tf\.aliasing_output = (\d+) : i32\})?", params):
        shape = tuple(int(d) for d in m.group(1).split("x") if d)
        args.append((shape, m.group(2), int(m.group(4)) if m.group(4) else None))
    outs = [(tuple(int(d) for d in m.group(1).split("x") if d), m.group(2)) for m in re.finditer(TENSOR, results)]
    rep = re.search(r"mhlo\.num_replicas = (\d+) : i32", text)
    names = {int(m.group(1)): m.group(2) for m in re.finditer(r"^//   %arg(\d+) ([^:]+):", text, re.M)}
    return args, outs, int(rep.group(1)) if rep else 1, names


def compile_program(text, replicas):
    from jax._src import xla_bridge
    from jax._src.lib import xla_client

    backend = xla_bridge.get_backend()
    devices = backend.local_devices()[:replicas]
    if len(devices) < replicas:
        sys.exit(f"the program has {replicas} replicas but {len(devices)} devices are visible")
    options = xla_client.CompileOptions()
    options.num_replicas = replicas
    options.executable_build_options.num_replicas = replicas
    t0 = time.perf_counter()
    exe = backend.compile_and_load(text, xla_client.DeviceList(tuple(devices)), options)
    return exe, devices, time.perf_counter() - t0


def execute(exe, devices, per_replica):
    """per_replica[r][i] (device arrays) -> results[r][j] (device arrays)."""
    if len(devices) == 1:
        return [exe.execute(per_replica[0])]
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    mesh = Mesh(np.array(devices), ("replica",))
    # Each device's buffer is its replica's own value; a "replicated" sharding just carries
    # one buffer per device (nothing checks that they are equal), whatever the rank.
    sharding = NamedSharding(mesh, PartitionSpec())
    args = [
        jax.make_array_from_single_device_arrays(
            per_replica[0][i].shape, sharding, [per_replica[r][i] for r in range(len(devices))])
        for i in range(len(per_replica[0]))
    ]
    out = exe.execute_sharded(args).disassemble_into_single_device_arrays()
    return [[out[j][r] for j in range(len(out))] for r in range(len(devices))]


def run_jobs(jobs_dir):
    report = []
    for job in sorted(glob.glob(os.path.join(jobs_dir, "*", ""))):
        text = open(os.path.join(job, "program.mlir")).read()
        args, outs, replicas, _ = signature(text)
        exe, devices, seconds = compile_program(text, replicas)
        per_replica = []
        for r in range(replicas):
            row = []
            for i, (shape, dtype, _) in enumerate(args):
                raw = np.fromfile(os.path.join(job, f"in_{r}_{i}.bin"), dtype=DTYPES[dtype]).reshape(shape)
                row.append(jax.device_put(raw, devices[r]))
            per_replica.append(row)
        results = execute(exe, devices, per_replica)
        for r, row in enumerate(results):
            for j, value in enumerate(row):
                np.asarray(value).astype(DTYPES[outs[j][1]]).tofile(os.path.join(job, f"out_{r}_{j}.bin"))
        with open(os.path.join(job, "outputs.json"), "w") as f:
            json.dump([{"shape": list(s), "dtype": IR_DTYPE[d]} for s, d in outs], f)
        report.append({"job": os.path.basename(os.path.dirname(job)), "compile_s": round(seconds, 3)})
    return {"jobs": report, "device": str(jax.devices()[0].device_kind)}


def synthetic_input(name, shape, dtype, rng):
    """Plausible values for a training-step argument, from its path in the export header."""
    if dtype == "ui8":
        return rng.integers(0, 256, shape, dtype=np.uint8)
    if name.startswith("batch.labels"):
        return rng.integers(0, 1000, shape).astype(np.int32)
    if name.startswith("mix.perm"):
        return np.arange(shape[0], dtype=np.int32)
    if name in ("mix.imageLam", "mix.labelLam"):
        return np.ones(shape, np.float32)
    if name.startswith("scalars.lr"):
        return np.full(shape, 1e-3, np.float32)
    if name.startswith("scalars."):
        return np.full(shape, 0.1, np.float32)
    if name.startswith("opt."):
        return np.zeros(shape, DTYPES[dtype])
    if dtype in ("f32", "bf16"):
        return (rng.standard_normal(shape) * 0.02).astype(DTYPES[dtype])
    return np.zeros(shape, DTYPES[dtype])


def mlir_runner(path):
    """Our exported step: (run(n) -> loss, batch, meta); donated results are fed back."""
    text = open(path).read()
    args, outs_spec, replicas, names = signature(text)
    if replicas != 1:
        sys.exit("time-mlir runs single-replica programs (export with --replicas 1)")
    exe, devices, compile_s = compile_program(text, 1)
    rng = np.random.default_rng(0)
    box = {"values": [jax.device_put(synthetic_input(names.get(i, ""), s, d, rng), devices[0])
                      for i, (s, d, _) in enumerate(args)]}
    batch = next((s[0] for i, (s, d, _) in enumerate(args) if names.get(i, "").startswith("batch.images")), None)
    results = re.findall(r"^//   #(\d+) ([^:]+):", text, re.M)
    loss_index = next((int(i) for i, n in results if n == "metrics.loss"), None)

    def run(n):
        for _ in range(n):
            outs = execute(exe, devices, [box["values"]])[0]
            # Donated (aliased) arguments were consumed: their results take their place.
            box["values"] = [outs[a] if a is not None else v for v, (_, _, a) in zip(box["values"], args)]
        jax.block_until_ready(outs)
        return float(outs[loss_index]) if loss_index is not None else None

    run.compiled = exe  # for HLO and cost inspection
    run.param_count = sum(int(np.prod(s)) for i, (s, _, _) in enumerate(args) if names.get(i, "").startswith("params."))
    return run, batch, {"program": path, "compile_s": round(compile_s, 2)}


# ----------------------------------------------------------------------------- the original


def flax_vit(cfg, dtype):
    import flax.linen as nn

    init = nn.initializers
    dim, heads, hd = cfg["dim"], cfg["heads"], cfg["dim"] // cfg["heads"]
    grid = cfg["image-size"] // cfg["patch-size"]

    class Attention(nn.Module):
        @nn.compact
        def __call__(self, x, det):
            dense = functools.partial(nn.DenseGeneral, features=(heads, hd), dtype=dtype,
                                      kernel_init=init.truncated_normal(0.02))
            q, k, v = dense(name="wq")(x), dense(name="wk")(x), dense(name="wv")(x)
            z = jnp.einsum("bqhd,bkhd->bhqk", q / hd**0.5, k)
            z = nn.Dropout(cfg["dropout"])(nn.softmax(z.astype(jnp.float32)).astype(dtype), det)
            z = jnp.einsum("bhqk,bkhd->bqhd", z, v)
            out = nn.DenseGeneral(dim, axis=(-2, -1), dtype=dtype, name="wo",
                                  kernel_init=init.truncated_normal(0.02))(z)
            return nn.Dropout(cfg["dropout"])(out, det)

    class FeedForward(nn.Module):
        @nn.compact
        def __call__(self, x, det):
            h = nn.Dense(4 * dim, dtype=dtype, name="w1", kernel_init=init.truncated_normal(0.02))(x)
            h = nn.Dropout(cfg["dropout"])(nn.gelu(h), det)
            h = nn.Dense(dim, dtype=dtype, name="w2", kernel_init=init.truncated_normal(0.02))(h)
            return nn.Dropout(cfg["dropout"])(h, det)

    class Layer(nn.Module):
        @nn.compact
        def __call__(self, x, det):
            drop = nn.Dropout(cfg["droppath"], broadcast_dims=(1, 2))
            s1 = self.param("scale1", init.constant(1e-4), (dim,)) if cfg["layerscale"] else 1.0
            s2 = self.param("scale2", init.constant(1e-4), (dim,)) if cfg["layerscale"] else 1.0
            x = x + drop(s1 * Attention(name="attn")(nn.LayerNorm(name="norm1")(x), det), det)
            return x + drop(s2 * FeedForward(name="ff")(nn.LayerNorm(name="norm2")(x), det), det)

    layer_cls = nn.remat(Layer, static_argnums=(2,)) if cfg["grad-ckpt"] else Layer

    class ViT(nn.Module):
        @nn.compact
        def __call__(self, x, det):
            p = cfg["patch-size"]
            x = nn.Conv(dim, (p, p), (p, p), padding="VALID", dtype=dtype, name="wte")(x)
            x = x + self.param("wpe", init.truncated_normal(0.02), (grid, grid, dim))
            x = x.reshape(x.shape[0], -1, dim)
            if cfg["pooling"] == "cls":
                cls = self.param("cls_token", init.truncated_normal(0.02), (1, 1, dim))
                x = jnp.concatenate([jnp.repeat(cls, x.shape[0], 0).astype(x.dtype), x], 1)
            x = nn.Dropout(cfg["dropout"])(x, det)
            for i in range(cfg["layers"]):
                x = layer_cls(name=f"layer_{i}")(x, det)
            x = nn.LayerNorm(name="norm")(x)
            x = x[:, 0] if cfg["pooling"] == "cls" else x.mean(1)
            return nn.Dense(cfg["labels"], dtype=dtype, name="head")(x)

    return ViT()


def train_step_bench(config_path, batch, precision, grad_ckpt, batch_from=None, matmul_precision="highest",
                     overrides=None):
    """The original stack's step for a config: (run(n) -> loss, batch, meta)."""
    import optax

    cfg = {**json.load(open(config_path)), **(overrides or {})}
    defaults = {"dropout": 0.0, "droppath": 0.1, "layerscale": False, "pooling": "cls", "grad-ckpt": False,
                "optimizer": "adamw", "learning-rate": 1e-3, "weight-decay": 0.05, "adam-b1": 0.9,
                "adam-b2": 0.999, "adam-eps": 1e-8, "clip-grad": 0.0, "criterion": "ce",
                "label-smoothing": 0.1, "mixup": 0.8, "cutmix": 1.0, "train-batch-size": 2048}
    cfg = {**defaults, **cfg}
    cfg["grad-ckpt"] = cfg["grad-ckpt"] or grad_ckpt
    precision = precision or cfg.get("precision", "f32")
    if batch_from:
        header = open(batch_from).read()
        m = re.search(r"per-replica batch (\d+)", header)
        batch = int(m.group(1))
        cfg["grad-ckpt"] = "optimization_barrier" in header or cfg["grad-ckpt"]
        precision = "bf16" if "compute bf16" in header.splitlines()[0] else "f32"
    batch = batch or cfg["train-batch-size"]
    size, labels = cfg["image-size"], cfg["labels"]
    model = flax_vit(cfg, jnp.bfloat16 if precision == "bf16" else jnp.float32)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, size, size, 3)), True)["params"]
    kernels = jax.tree_util.tree_map_with_path(lambda p, _: p[-1].key == "kernel", params)
    make = optax.lamb if cfg["optimizer"] == "lamb" else optax.adamw
    tx = make(cfg["learning-rate"], cfg["adam-b1"], cfg["adam-b2"], cfg["adam-eps"],
              weight_decay=cfg["weight-decay"], mask=kernels)
    if cfg["clip-grad"] > 0:
        tx = optax.chain(optax.clip_by_global_norm(cfg["clip-grad"]), tx)
    state = (params, tx.init(params))
    mean = jnp.array([0.485, 0.456, 0.406]) * 255
    std = jnp.array([0.229, 0.224, 0.225]) * 255
    mixing = cfg["mixup"] > 0 or cfg["cutmix"] > 0

    def step(state, images, targets, perm, lam, box, key):
        params, opt = state
        x = (jnp.transpose(images, (0, 2, 3, 1)).astype(jnp.float32) - mean) / std
        y = jax.nn.one_hot(targets, labels)
        if cfg["criterion"] == "ce" and cfg["label-smoothing"] > 0:
            y = optax.smooth_labels(y, cfg["label-smoothing"])
        if mixing:
            rows, cols = jnp.arange(size)[:, None], jnp.arange(size)[None, :]
            inside = (rows >= box[0]) & (rows < box[1]) & (cols >= box[2]) & (cols < box[3])
            w = jnp.where(inside, 0.0, lam)[None, :, :, None]
            x = w * x + (1 - w) * x[perm]
            y = lam * y + (1 - lam) * y[perm]

        def loss_fn(p):
            logits = model.apply({"params": p}, x, False, rngs={"dropout": key}).astype(jnp.float32)
            if cfg["criterion"] == "ce":
                return optax.softmax_cross_entropy(logits, y).mean()
            return optax.sigmoid_binary_cross_entropy(logits, (y > 0).astype(jnp.float32)).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt = tx.update(grads, opt, params)
        return (optax.apply_updates(params, updates), opt), loss

    rng = np.random.default_rng(0)
    inputs = [jnp.asarray(rng.integers(0, 256, (batch, 3, size, size), dtype=np.uint8)),
              jnp.asarray(rng.integers(0, labels, (batch,), dtype=np.int32)),
              jnp.asarray(rng.permutation(batch).astype(np.int32)), jnp.float32(0.7),
              jnp.asarray(np.array([size // 4, size // 2, size // 4, size // 2], np.int32)),
              jax.random.PRNGKey(1)]
    jitted = jax.jit(step, donate_argnums=(0,))
    t0 = time.perf_counter()
    # Our programs ask for HIGHEST unless exported otherwise; JAX's default (TF32 on NVIDIA
    # GPUs, bf16 passes on TPUs) is faster and less exact. Match it for a like-for-like ratio.
    with jax.default_matmul_precision(matmul_precision):
        compiled = jitted.lower(state, *inputs).compile()
    compile_s = time.perf_counter() - t0
    box = {"state": state}

    def run(n):
        for _ in range(n):
            box["state"], loss = compiled(box["state"], *inputs)
        jax.block_until_ready(loss)
        return float(loss)

    meta = {"config": config_path, "batch": batch, "precision": precision, "grad_ckpt": cfg["grad-ckpt"],
            "matmul_precision": matmul_precision, "compile_s": round(compile_s, 2)}
    run.compiled = compiled  # for HLO and cost inspection
    run.param_count = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(params))
    return run, batch, meta


def cost(compiled):
    """XLA's cost analysis of a compiled step: flops and bytes accessed (None where absent)."""
    try:
        c = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - not every client offers it
        return None
    c = c[0] if isinstance(c, (list, tuple)) else c
    return {k.replace(" ", "_"): c.get(k) for k in ("flops", "bytes accessed")} if c else None


def timed(run, batch, steps, meta):
    run(2)
    t0, c0 = time.perf_counter(), time.process_time()
    loss = run(steps)
    dt = (time.perf_counter() - t0) / steps
    cpu = (time.process_time() - c0) / steps  # all threads: the step's cost on a loaded machine
    return {**meta, "step_ms": round(dt * 1e3, 3), "img_per_s": round(batch / dt, 1) if batch else None,
            "cpu_ms_per_step": round(cpu * 1e3, 3),
            "loss": loss, "device": jax.devices()[0].device_kind, "jax": jax.__version__}


def compare(config_path, program, steps, rounds, overrides=None):
    """Both steps compiled, then timed alternately; the ratio of medians is ours / JAX."""
    text = open(program).read()
    highest = "precision HIGHEST" in text or "precision_config" not in text
    jax_run, batch, jax_meta = train_step_bench(config_path, None, None, False, batch_from=program,
                                                matmul_precision="highest" if highest else "default",
                                                overrides=overrides)
    our_run, our_batch, our_meta = mlir_runner(program)
    if our_batch != batch:
        sys.exit(f"the program's batch is {our_batch}, the config's {batch}")
    if our_run.param_count != jax_run.param_count:
        sys.exit(f"{program} has {our_run.param_count} parameters, the JAX model of {config_path} "
                 f"{jax_run.param_count}: export and compare the same model (the config keys given "
                 "to export-hlo go to compare as --set KEY=VALUE)")
    ours, theirs, ours_cpu, theirs_cpu = [], [], [], []
    for _ in range(rounds):
        t = timed(jax_run, batch, steps, jax_meta)
        theirs.append(t["step_ms"])
        theirs_cpu.append(t["cpu_ms_per_step"])
        t = timed(our_run, batch, steps, our_meta)
        ours.append(t["step_ms"])
        ours_cpu.append(t["cpu_ms_per_step"])
    med = lambda xs: sorted(xs)[len(xs) // 2]
    return {"config": config_path, "program": program, "batch": batch, "device": jax.devices()[0].device_kind,
            "jax": jax.__version__, "jax_step_ms": med(theirs), "ours_step_ms": med(ours),
            "jax_img_per_s": round(batch / med(theirs) * 1e3, 1), "ours_img_per_s": round(batch / med(ours) * 1e3, 1),
            "ours_over_jax_throughput": round(med(theirs) / med(ours), 3),
            # The fastest round of each: on a shared machine, the least disturbed one.
            "ours_over_jax_best_round": round(min(theirs) / min(ours), 3),
            "jax_step_ms_all": theirs, "ours_step_ms_all": ours,
            # CPU time of all threads per step: less swayed than wall time by other processes.
            "cpu_ms_per_step": {"jax": med(theirs_cpu), "ours": med(ours_cpu)},
            "cost": {"jax": cost(jax_run.compiled), "ours": cost(our_run.compiled)},
            "compile_s": {"jax": jax_meta["compile_s"], "ours": our_meta["compile_s"]}}


def override(text):
    """`KEY=VALUE` from --set: the value as JSON where it parses (4, 0.1, true), else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--set wants KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train-step")
    p.add_argument("config")
    p.add_argument("--batch", type=int)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--precision", choices=["f32", "bf16"])
    p.add_argument("--grad-ckpt", action="store_true")
    p.add_argument("--matmul-precision", choices=["default", "highest"], default="highest")
    p = sub.add_parser("time-mlir")
    p.add_argument("program")
    p.add_argument("--steps", type=int, default=20)
    p = sub.add_parser("compare")
    p.add_argument("config")
    p.add_argument("program")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--set", type=override, action="append", default=[], metavar="KEY=VALUE")
    p = sub.add_parser("cost")
    p.add_argument("programs", nargs="+")
    p = sub.add_parser("run-mlir")
    p.add_argument("jobs_dir")
    a = parser.parse_args()
    if a.command == "train-step":
        run, batch, meta = train_step_bench(a.config, a.batch, a.precision, a.grad_ckpt,
                                            matmul_precision=a.matmul_precision)
        out = timed(run, batch, a.steps, meta)
    elif a.command == "time-mlir":
        run, batch, meta = mlir_runner(a.program)
        out = timed(run, batch, a.steps, meta)
    elif a.command == "compare":
        out = compare(a.config, a.program, a.steps, a.rounds, dict(a.set))
    elif a.command == "cost":
        out = {"programs": [{"program": path, **(cost(compile_program(open(path).read(), 1)[0]) or {})}
                            for path in a.programs]}
    else:
        out = run_jobs(a.jobs_dir)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

/**
 * Emitted programs compiled and run by real XLA (jaxlib's CPU client, through
 * scripts/peers/bench_jax.py run-mlir): the op table's values, gradients, a 4-replica all-reduce step
 * and a ViT training step must agree with the CPU backend. Needs a Python with jax and
 * ml_dtypes: $DEIT3_JAX_PYTHON, else the peer venv's ($DEIT3_PEERS_PYTHON, else
 * ~/.cache/deit3-peers/bin/python, as `deno task bench` finds it), else `python3`; skipped when
 * none imports jax.
 */
import { valueAndGrad } from "../../../lib/autodiff/grad.ts";
import { CpuBackend } from "../../../lib/backend/cpu/backend.ts";
import { type EmitOptions, emitStableHlo } from "../../../lib/backend/stablehlo/emit.ts";
import { exportTrainStep } from "../../../lib/train/export.ts";
import { resolveConfig } from "../../../lib/config/mod.ts";
import { allocArray, type DType } from "../../../lib/ir/dtype.ts";
import { type Graph, trace } from "../../../lib/ir/graph.ts";
import { type HostTensor, hostTensor, numel } from "../../../lib/ir/host_tensor.ts";
import type { Tensor } from "../../../lib/ir/tensor.ts";
import { assert, assertAllClose, assertEquals } from "../../assert.ts";
import { GRAD_CASES } from "../grad_table.ts";
import { OP_CASES } from "../op_table.ts";
import { mlpInputs, mlpSpecs, mlpTrainStep } from "./mlp.ts";

const SCRIPT = new URL("../../../scripts/peers/bench_jax.py", import.meta.url).pathname;
const python = await findJaxPython();
const cpu = new CpuBackend();

interface Job {
  name: string;
  text: string;
  /** Per replica, the arguments. */
  inputs: HostTensor[][];
}

/** Runs every job in one Python process; returns per job, per replica, the results. */
async function runOnXla(jobs: Job[]): Promise<HostTensor[][][]> {
  const dir = await Deno.makeTempDir({ prefix: "xla_jobs_" });
  try {
    for (const [k, job] of jobs.entries()) {
      const jd = `${dir}/${String(k).padStart(3, "0")}`;
      await Deno.mkdir(jd);
      await Deno.writeTextFile(`${jd}/program.mlir`, job.text);
      for (const [r, row] of job.inputs.entries()) {
        for (const [i, t] of row.entries()) {
          await Deno.writeFile(
            `${jd}/in_${r}_${i}.bin`,
            new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
          );
        }
      }
    }
    const out = await new Deno.Command(python!, {
      args: [SCRIPT, "run-mlir", dir],
      env: { XLA_FLAGS: "--xla_force_host_platform_device_count=4", JAX_PLATFORMS: "cpu" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(`run-mlir failed:\n${new TextDecoder().decode(out.stderr).slice(-3000)}`);
    }
    return await Promise.all(jobs.map(async (job, k) => {
      const jd = `${dir}/${String(k).padStart(3, "0")}`;
      const specs = JSON.parse(await Deno.readTextFile(`${jd}/outputs.json`)) as {
        shape: number[];
        dtype: DType;
      }[];
      return await Promise.all(job.inputs.map((_, r) =>
        Promise.all(specs.map(async (s, j) => {
          const bytes = await Deno.readFile(`${jd}/out_${r}_${j}.bin`);
          const data = allocArray(s.dtype, numel(s.shape));
          new Uint8Array(data.buffer).set(bytes);
          return { shape: s.shape, dtype: s.dtype, data };
        }))
      ));
    }));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function runCpu(graph: Graph, inputs: HostTensor[]): Promise<HostTensor[]> {
  const exe = await cpu.compile(graph);
  const args = await Promise.all(inputs.map((t) => cpu.fromHost(t)));
  return await Promise.all((await exe.execute(args)).map((o) => cpu.toHost(o)));
}

function program(fn: (...xs: never[]) => unknown, inputs: HostTensor[], options?: EmitOptions) {
  const { graph } = trace(fn, ...inputs.map((t) => ({ shape: t.shape, dtype: t.dtype })));
  return { graph, text: emitStableHlo(graph, options) };
}

Deno.test({
  name:
    "xla: op table, gradients, a 4-replica step and a ViT training step agree with the CPU backend",
  ignore: python === null,
  fn: async () => {
    const jobs: Job[] = [];
    const checks: ((results: HostTensor[][]) => Promise<void> | void)[] = [];

    for (const c of OP_CASES) {
      jobs.push({ name: c.name, text: program(c.fn, c.inputs).text, inputs: [c.inputs] });
      checks.push(([[out]]) => {
        assertEquals([out.shape, out.dtype], [c.expectedShape, c.expectedDtype ?? "f32"], c.name);
        // XLA's exp/log/tanh/erf are vectorized approximations (a few ulp); integers are exact.
        const float = out.dtype === "f32";
        assertAllClose(Array.from(out.data), Array.from(c.expected), {
          atol: float ? Math.max(c.atol ?? 0, 1e-6) : 0,
          rtol: float ? 1e-6 : 0,
          msg: c.name,
        });
      });
    }

    for (const c of GRAD_CASES) {
      const p = program(
        (...xs: Tensor[]) => valueAndGrad((ps: Tensor[]) => c.fn(...ps))(xs),
        c.inputs,
      );
      jobs.push({ name: c.name, text: p.text, inputs: [c.inputs] });
      checks.push(async ([outs]) => {
        const want = await runCpu(p.graph, c.inputs);
        outs.forEach((o, j) =>
          assertAllClose(Array.from(o.data), Array.from(want[j].data), {
            atol: 1e-5,
            rtol: 1e-5,
            msg: `grad ${c.name}`,
          })
        );
      });
    }

    // Data parallel: 4 replicas with different batches; the all-reduce averages the gradients,
    // so the new parameters are the mean of what each replica alone would compute.
    const perReplica = [0, 1, 2, 3].map((r) => mlpInputs(r));
    const dp = trace(mlpTrainStep(4), ...mlpSpecs());
    jobs.push({ name: "mlp x4", text: emitStableHlo(dp.graph), inputs: perReplica });
    checks.push(async (replicas) => {
      const single = trace(mlpTrainStep(1), ...mlpSpecs()).graph;
      const alone = await Promise.all(perReplica.map((ins) => runCpu(single, ins)));
      for (const [r, outs] of replicas.entries()) {
        assertAllClose(Array.from(outs[0].data), Array.from(alone[r][0].data), {
          atol: 1e-6,
          rtol: 1e-5,
          msg: `loss of replica ${r}`,
        });
        for (let j = 1; j < outs.length; j++) {
          const mean = alone[0][j].data.map((_, i) =>
            alone.reduce((s, a) => s + a[j].data[i], 0) / 4
          );
          assertAllClose(Array.from(outs[j].data), Array.from(mean), {
            atol: 1e-6,
            rtol: 1e-5,
            msg: `param ${j} of replica ${r}`,
          });
        }
      }
    });

    // A ViT training step (droppath + dropout threefry masks, Mixup/CutMix, LAMB, clipping,
    // layer-wise decay, rematerialization). Not with bf16 matmuls: XLA's CPU backend has no
    // BF16 x BF16 -> F32 dot ("Unsupported element type for DotThunk"); GPUs and TPUs do.
    const config = resolveConfig(VIT, "tiny.json", [], { random: () => 0.5 });
    const exported = exportTrainStep(config, { batch: 4 });
    const inputs = vitInputs(exported.graph, exported.inputs);
    jobs.push({ name: "vit", text: exported.text, inputs: [inputs] });
    checks.push(async ([outs]) => {
      const want = await runCpu(exported.graph, inputs);
      outs.forEach((o, j) =>
        assertAllClose(Array.from(o.data), Array.from(want[j].data), {
          atol: 2e-5,
          rtol: 1e-4,
          msg: exported.outputs[j],
        })
      );
    });

    // The 4-replica ViT step as export-hlo --devices 4 writes it, every replica with its own
    // batch, Mixup and dropout key, against the CPU backend's 4 virtual devices.
    const dp4 = exportTrainStep(config, { batch: 8, devices: 4 });
    const perDevice = [0, 1, 2, 3].map((r) => vitInputs(dp4.graph, dp4.inputs, r));
    jobs.push({ name: "vit x4", text: dp4.text, inputs: perDevice });
    checks.push(async (replicas) => {
      const cpu4 = new CpuBackend({ devices: 4 });
      const exe = await cpu4.compile(dp4.graph);
      const args = await Promise.all(
        perDevice[0].map((_, i) => cpu4.fromHostPerDevice(perDevice.map((row) => row[i]))),
      );
      const want = await Promise.all((await exe.execute(args)).map((o) => cpu4.toHostPerDevice(o)));
      for (const [r, outs] of replicas.entries()) {
        outs.forEach((o, j) =>
          assertAllClose(Array.from(o.data), Array.from(want[j][r].data), {
            atol: 1e-5,
            rtol: 1e-5,
            msg: `replica ${r}: ${dp4.outputs[j]}`,
          })
        );
      }
      // Replicated state stays replicated: every device holds the same new parameters.
      for (const [j, name] of dp4.outputs.entries()) {
        if (!name.startsWith("params.")) continue;
        for (let r = 1; r < 4; r++) {
          assertEquals(Array.from(want[j][r].data), Array.from(want[j][0].data), name);
        }
      }
    });

    const results = await runOnXla(jobs);
    for (const [k, check] of checks.entries()) await check(results[k]);
  },
});

Deno.test({
  name: "xla: the ViT step's bytes accessed grow no faster than its depth",
  ignore: python === null,
  fn: async () => {
    // XLA's fusion pass once recomputed the residual stream's gradient inside every consumer
    // from the chain of all later layers (lib/autodiff/grad.ts, sumCotangents): bytes grew with
    // depth squared, 4.5x from 2 to 8 layers here (ViT-S/16: 15.4 GB against JAX's 10.4).
    const dir = await Deno.makeTempDir({ prefix: "xla_cost_" });
    try {
      const paths = [];
      for (const layers of [2, 8]) {
        const config = resolveConfig({ ...DEEP, layers }, "deep.json", [], { random: () => 0.5 });
        paths.push(`${dir}/layers_${layers}.mlir`);
        await Deno.writeTextFile(paths.at(-1)!, exportTrainStep(config, { batch: 4 }).text);
      }
      const out = await new Deno.Command(python!, {
        args: [SCRIPT, "cost", ...paths],
        env: { JAX_PLATFORMS: "cpu" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      if (!out.success) {
        throw new Error(`cost failed:\n${new TextDecoder().decode(out.stderr).slice(-3000)}`);
      }
      const [two, eight] = (JSON.parse(new TextDecoder().decode(out.stdout)) as {
        programs: { bytes_accessed: number }[];
      }).programs.map((p) => p.bytes_accessed);
      // 3.5x with the fixed sum order; 4x would be linear with no fixed cost at all.
      assert(eight < 4 * two, `8 layers move ${eight} bytes, 2 layers ${two}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** ViT-S/16's options (LayerScale, Mixup/CutMix, clipping) at a small size. */
const DEEP = {
  "dim": 32,
  "heads": 2,
  "labels": 10,
  "patch-size": 8,
  "image-size": 32,
  "layerscale": true,
  "mixup": 0.8,
  "cutmix": 1.0,
  "clip-grad": 1.0,
  "train-dataset-shards": "x",
};

const VIT = {
  "layers": 1,
  "dim": 16,
  "heads": 2,
  "labels": 5,
  "patch-size": 4,
  "image-size": 8,
  "layerscale": true,
  "mixup": 0.8,
  "cutmix": 1.0,
  "droppath": 0.2,
  "dropout": 0.1,
  "optimizer": "lamb",
  "clip-grad": 1.0,
  "lr-decay": 0.75,
  "grad-ckpt": true,
  "train-dataset-shards": "x",
};

/** Inputs of an exported ViT step; batch, Mixup and key differ by `replica`. */
function vitInputs(graph: Graph, names: string[], replica = 0): HostTensor[] {
  return graph.inputs.map((t, k) => {
    const name = names[k];
    const v = (i: number) => {
      if (name.startsWith("batch.images")) return (i * 37 + k + 11 * replica) % 256;
      if (name.startsWith("batch.labels")) return (i * 3 + 1 + replica) % 5;
      if (name.startsWith("mix.perm")) {
        return t.shape[0] === 4 ? [2, 0, 3, 1][i] : (i + replica) % 2;
      }
      if (name.startsWith("mix.box")) return [1, 6, 2, 5][i];
      if (name.startsWith("mix.")) return 0.7 - 0.1 * replica;
      if (name.startsWith("scalars.")) return 0.01 * (k % 7 + 1);
      if (name.startsWith("key")) return [replica, 42][i];
      if (name.startsWith("opt.nu")) return Math.abs(Math.sin(i + k)) * 1e-3;
      return Math.sin(i * 0.37 + k) * 0.1;
    };
    return hostTensor(
      [...t.shape],
      t.dtype,
      Array.from({ length: numel(t.shape) }, (_, i) => v(i)),
    );
  });
}

async function findJaxPython(): Promise<string | null> {
  const venv = Deno.env.get("HOME") && `${Deno.env.get("HOME")}/.cache/deit3-peers/bin/python`;
  for (
    const candidate of [
      Deno.env.get("DEIT3_JAX_PYTHON"),
      Deno.env.get("DEIT3_PEERS_PYTHON"),
      venv,
      "python3",
    ]
  ) {
    if (!candidate) continue;
    try {
      const out = await new Deno.Command(candidate, {
        args: ["-c", "import jax, ml_dtypes"],
        stdout: "null",
        stderr: "null",
      }).output();
      if (out.success) return candidate;
    } catch {
      // not installed
    }
  }
  console.warn("xla tests skipped: no Python with jax (set DEIT3_JAX_PYTHON)");
  return null;
}

/**
 * deno task doctor [--backend cpu|webgpu|pjrt] [--reference DIR] [--tolerance X] [--json]
 *
 * Checks a backend against a reference computed by the original stack: logits, loss, every
 * gradient, and three optimizer steps for AdamW, LAMB and AdamW + clipping + layer-wise decay.
 */
import { type BackendName, createBackend } from "../lib/backend/select.ts";
import { type DoctorReport, runDoctor } from "../lib/train/doctor.ts";
import { command, EXIT, exit, parseFlags, TaskError, UsageError } from "./cli.ts";

const DEFAULT_REFERENCE = new URL("../tests/fixtures/reference/vit-a", import.meta.url).pathname;
const DEFAULT_TOLERANCE: Record<string, number> = { cpu: 1e-5, webgpu: 1e-4, pjrt: 1e-4 };

const USAGE =
  `usage: deno task doctor [--backend cpu|webgpu|pjrt] [--reference DIR] [--tolerance X] [--json]

Checks a backend against a reference computed by the original stack (flax, optax): the logits,
the loss, every gradient, and three optimizer steps of AdamW, LAMB, and AdamW with gradient
clipping and layer-wise lr decay. Run it before a long run on a new machine.

  --backend cpu|webgpu|pjrt  the backend to check (default cpu)
  --pjrt-plugin PATH         the PJRT plugin for --backend pjrt (else PJRT_PLUGIN_PATH, or found)
  --reference DIR            a reference folder (default tests/fixtures/reference/vit-a; others
                             there: vit-gap, vit-sincos2d, vit-1head)
  --tolerance X              the largest error that passes (default 1e-5 on cpu, 1e-4 elsewhere)
  --json                     one JSON object instead of the table
  -h, --help                 this text

Exit status: 0 when every check passes, 1 when one fails, 2 when the backend or the reference
cannot be loaded.`;

export const main = command({ name: "doctor", usage: USAGE, run: doctor });

const BACKENDS: readonly BackendName[] = ["auto", "cpu", "webgpu", "pjrt"];

/** 0 when every check passes, 1 when one fails, 2 when the backend or reference cannot load. */
async function doctor(args: string[]): Promise<number> {
  const { values } = parseFlags(args, {
    backend: { type: "string", default: "cpu" },
    reference: { type: "string", default: DEFAULT_REFERENCE },
    tolerance: { type: "string" },
    "pjrt-plugin": { type: "string" },
    json: { type: "boolean", default: false },
  });
  const name = BACKENDS.find((b) => b === values.backend);
  if (name === undefined) {
    throw new UsageError(
      `unknown backend "${values.backend}" (expected auto, cpu, webgpu or pjrt)`,
    );
  }
  const tolerance = values.tolerance === undefined ? undefined : Number(values.tolerance);
  if (tolerance !== undefined && !(tolerance > 0 && Number.isFinite(tolerance))) {
    throw new UsageError(`--tolerance must be a number > 0, got "${values.tolerance}"`);
  }
  let report;
  try {
    const backend = await createBackend(name, { pjrtPlugin: values["pjrt-plugin"] });
    try {
      const tol = tolerance ?? DEFAULT_TOLERANCE[backend.name] ?? 1e-4;
      report = await runDoctor(backend, values.reference, tol);
    } finally {
      backend.dispose();
    }
  } catch (e) {
    throw new TaskError(e instanceof Error ? e.message : String(e), EXIT.usage);
  }
  console.log(values.json ? JSON.stringify(report) : formatReport(report));
  return report.pass ? EXIT.ok : EXIT.failed;
}

function gradsOk(r: DoctorReport): boolean {
  return r.grads_worst.abs <= r.tolerance || r.grads_worst.rel <= 10 * r.tolerance;
}

export function formatReport(r: DoctorReport): string {
  const row = (name: string, v: number, tol = r.tolerance) =>
    `  ${name.padEnd(40)} ${v.toExponential(2).padStart(10)}  ${v <= tol ? "ok" : "FAIL"}`;
  return [
    `backend ${r.backend} (${r.device})`,
    `reference ${r.reference}, tolerance ${r.tolerance}`,
    row("logits max |err|", r.logits_max_abs),
    row("loss |err|", r.loss_abs),
    // A leaf passes within the tolerance absolutely or 10x relatively (runDoctor); the worst
    // leaf is the one furthest from passing, so it decides the row.
    `  ${"grads max |err|".padEnd(40)} ${r.grads_max_abs.toExponential(2).padStart(10)}  ` +
    `${gradsOk(r) ? "ok" : "FAIL"} (worst leaf ${r.grads_worst.path}: abs ${
      r.grads_worst.abs.toExponential(2)
    }, rel ${r.grads_worst.rel.toExponential(2)}; a leaf passes at abs <= ${r.tolerance} or ` +
    `rel <= ${10 * r.tolerance})`,
    ...Object.entries(r.after3).map(([k, v]) => row(`after 3 steps ${k}`, v)),
    `${r.pass ? "PASS" : "FAIL"} in ${r.seconds.toFixed(1)} s`,
  ].join("\n");
}

// Last: the constants above are initialized before the task runs.
if (import.meta.main) await exit(main);

/**
 * Backend selection: `cpu`, `webgpu`, `pjrt`, or `auto` (a PJRT plugin if one is configured or
 * found, else a hardware WebGPU adapter, else the CPU). Optional backends load lazily so that a machine
 * without them never pays for (or fails on) their imports.
 */
import type { Backend } from "./backend.ts";
import type { JobProcess } from "../../ffi/client.ts";
import type { Precision } from "../ir/primitive.ts";
import { CpuBackend } from "./cpu/backend.ts";
import type { ProcessSum } from "./cpu/cross_process.ts";

export type BackendName = "auto" | "cpu" | "webgpu" | "pjrt";

export interface BackendOptions {
  pjrtPlugin?: string;
  precision?: "f32" | "bf16";
  /**
   * Each matmul's precision (config key `matmul-precision`). The pjrt backend emits it in every
   * dot_general; the cpu and webgpu backends compute in f32 whatever it says.
   */
  matmulPrecision?: Precision;
  /**
   * Data-parallel devices of this process (config key `devices`); 0 or unset: every
   * addressable device on pjrt, 1 on cpu and webgpu. The cpu backend runs N virtual devices.
   */
  devices?: number;
  /**
   * This process's place in a multi-process job and the job's key-value store, for PJRT plugins
   * that join hosts through one (CUDA: `node_id`, `num_nodes`; see ffi/client.ts).
   */
  job?: JobProcess;
  /** cpu in a multi-process job: the all-reduce across the processes (cpu/cross_process.ts). */
  processes?: ProcessSum;
  /** Called with a line for the log when auto-selection skips a backend. */
  log?: (line: string) => void;
}

export async function createBackend(
  name: BackendName,
  options: BackendOptions = {},
): Promise<Backend> {
  // Configs hold null for an unset plugin path.
  const opts = { ...options, pjrtPlugin: options.pjrtPlugin || undefined };
  switch (name) {
    case "cpu":
      return new CpuBackend({ devices: opts.devices || 1, processes: opts.processes });
    case "webgpu": {
      if ((opts.devices ?? 0) > 1) {
        throw new Error(
          `--devices ${opts.devices}: the webgpu backend runs one device; use --backend cpu ` +
            "(virtual devices) or pjrt",
        );
      }
      quietWebGpuProbe();
      const { WebGpuBackend } = await import("./webgpu/backend.ts");
      return await WebGpuBackend.create();
    }
    case "pjrt": {
      const { PjrtBackend } = await import("./pjrt/backend.ts");
      return await PjrtBackend.create({
        pluginPath: opts.pjrtPlugin,
        precision: opts.precision,
        matmulPrecision: opts.matmulPrecision,
        devices: opts.devices || "all",
        job: opts.job,
        log: opts.log,
      });
    }
    case "auto": {
      const log = opts.log ?? (() => {});
      if (opts.pjrtPlugin || Deno.env.get("PJRT_PLUGIN_PATH")) {
        return await createBackend("pjrt", opts);
      }
      try {
        return await createBackend("pjrt", opts);
      } catch (e) {
        log(`backend auto: ${pjrtSkipReason(e)}`);
      }
      quietWebGpuProbe();
      const adapter = await navigator.gpu?.requestAdapter().catch(() => null);
      if (!adapter) {
        log("backend auto: no WebGPU adapter");
      } else if (adapter.info.isFallbackAdapter) {
        // A software rasterizer (Mesa llvmpipe) on the same cores: the CPU backend is faster
        // there (BENCHMARKS.md). `--backend webgpu` still selects it.
        log(
          `backend auto: WebGPU adapter "${adapter.info.description}" is a software fallback; using the CPU`,
        );
      } else {
        try {
          return await createBackend("webgpu", opts);
        } catch (e) {
          log(`backend auto: WebGPU failed (${firstLine(e)})`);
        }
      }
      return new CpuBackend({ devices: opts.devices || 1 });
    }
    default:
      throw new Error(`unknown backend "${name}" (expected auto, cpu, webgpu or pjrt)`);
  }
}

/** Why auto-selection skipped PJRT, on one line (the not-found error lists paths on many). */
export function pjrtSkipReason(e: unknown): string {
  const searched = (e as { searched?: unknown })?.searched;
  if (Array.isArray(searched)) {
    return `no PJRT plugin found (searched ${searched.length} place${
      searched.length === 1 ? "" : "s"
    }: ${searched.join(", ")}; --pjrt-plugin PATH or PJRT_PLUGIN_PATH names one)`;
  }
  return `no PJRT plugin (${firstLine(e)})`;
}

/**
 * Opening a WebGPU adapter on a headless Linux machine without `XDG_RUNTIME_DIR` makes the
 * display libraries under wgpu print `error: XDG_RUNTIME_DIR is invalid or not set in the
 * environment.` to stderr. Point it at a private empty folder (created 0700, removed at exit)
 * when it is unset or not a folder: there is no display server in it, so nothing is printed.
 */
export function quietWebGpuProbe(): void {
  if (Deno.build.os !== "linux") return;
  const current = Deno.env.get("XDG_RUNTIME_DIR");
  try {
    if (current && Deno.statSync(current).isDirectory) return;
  } catch {
    // not a folder: replace it
  }
  const dir = Deno.makeTempDirSync({ prefix: "deit3-xdg-runtime-" });
  Deno.env.set("XDG_RUNTIME_DIR", dir);
  globalThis.addEventListener("unload", () => {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch {
      // already gone
    }
  });
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0];
}

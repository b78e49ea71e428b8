/**
 * What W&B's System and Overview tabs show: system metrics (`wandb-events.jsonl` lines, the
 * official client's key names) and `wandb-metadata.json` (host, OS, command line, git commit;
 * here also the Deno version, the backend and its devices).
 *
 * Linux figures come from /proc; elsewhere only what Deno itself reports. Per-device figures of
 * NVIDIA GPUs (what the PJRT CUDA backend runs on) come from `nvidia-smi`, under the official
 * client's names (`system.gpu.N.gpu`, `.memory`, `.memoryAllocated`, `.memoryAllocatedBytes`,
 * `.temp`, `.powerWatts`, `.powerPercent`); the CPU and WebGPU backends have none to give.
 */

/** CPU time counters read at the previous sample, for utilisation between two samples. */
export class SystemSampler {
  #prevTotal: number[] | null = null;
  #prevProc: { cpu: number; at: number } | null = null;

  /** One `wandb-events.jsonl` row without `_timestamp`/`_runtime`. */
  sample(): Record<string, number> {
    const out: Record<string, number> = {};
    try {
      const m = Deno.systemMemoryInfo();
      out["system.memory_percent"] = 100 * (1 - m.available / m.total);
      out["system.proc.memory.availableMB"] = m.available / 2 ** 20;
      const rss = Deno.memoryUsage().rss;
      out["system.proc.memory.rssMB"] = rss / 2 ** 20;
      out["system.proc.memory.percent"] = 100 * rss / m.total;
    } catch {
      // not available here
    }
    const perCpu = this.#cpuPercents();
    if (perCpu) perCpu.forEach((p, i) => out[`system.cpu.${i}.cpu_percent`] = p);
    const proc = this.#processCpu();
    if (proc !== null) out["system.cpu"] = proc;
    const threads = readProc("/proc/self/status")?.match(/^Threads:\s+(\d+)/m);
    if (threads) out["system.proc.cpu.threads"] = Number(threads[1]);
    return out;
  }

  /** Per core, percent busy since the previous sample (/proc/stat). */
  #cpuPercents(): number[] | null {
    const text = readProc("/proc/stat");
    if (!text) return null;
    const rows = text.split("\n").filter((l) => /^cpu\d+ /.test(l)).map((l) =>
      l.trim().split(/\s+/).slice(1).map(Number)
    );
    const totals = rows.flatMap((r) => [r.reduce((a, b) => a + b, 0), r[3] + (r[4] ?? 0)]);
    const prev = this.#prevTotal;
    this.#prevTotal = totals;
    if (!prev || prev.length !== totals.length) return null;
    const out: number[] = [];
    for (let i = 0; i < totals.length; i += 2) {
      const total = totals[i] - prev[i], idle = totals[i + 1] - prev[i + 1];
      out.push(total > 0 ? 100 * (1 - idle / total) : 0);
    }
    return out;
  }

  /** This process's CPU use since the previous sample, percent of one core (/proc/self/stat). */
  #processCpu(): number | null {
    const text = readProc("/proc/self/stat");
    if (!text) return null;
    // Fields after the command name in parentheses: utime and stime are the 14th and 15th.
    const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(f[11]) + Number(f[12]);
    const now = performance.now();
    const prev = this.#prevProc;
    this.#prevProc = { cpu: ticks, at: now };
    if (!prev || now <= prev.at) return null;
    // USER_HZ is 100 on Linux.
    return 100 * ((ticks - prev.cpu) / 100) / ((now - prev.at) / 1000);
  }
}

const GPU_QUERY = "index,utilization.gpu,utilization.memory,memory.used,memory.total," +
  "temperature.gpu,power.draw,power.limit";

/**
 * Per-GPU figures from `nvidia-smi` (empty where there is none). `nvidia-smi` reports memory in
 * MiB and "[N/A]" for what a device does not measure; those are left out.
 */
export async function gpuSample(nvidiaSmi = "nvidia-smi"): Promise<Record<string, number>> {
  const text = await run(nvidiaSmi, [`--query-gpu=${GPU_QUERY}`, "--format=csv,noheader,nounits"]);
  const out: Record<string, number> = {};
  for (const line of (text ?? "").split("\n")) {
    const f = line.split(",").map((x) => x.trim());
    if (f.length < 8 || !/^\d+$/.test(f[0])) continue;
    const [util, memUtil, used, total, temp, draw, limit] = f.slice(1).map((x) =>
      /^-?[\d.]+$/.test(x) ? Number(x) : NaN
    );
    const k = `system.gpu.${f[0]}`;
    const put = (name: string, v: number) => {
      if (Number.isFinite(v)) out[`${k}.${name}`] = v;
    };
    put("gpu", util);
    put("memory", memUtil);
    put("memoryAllocated", 100 * used / total);
    put("memoryAllocatedBytes", used * 2 ** 20);
    put("temp", temp);
    put("powerWatts", draw);
    put("powerPercent", 100 * draw / limit);
  }
  return out;
}

/** `gpu`, `gpu_count`, `gpu_nvidia` of wandb-metadata.json, when `nvidia-smi` answers. */
export async function gpuMetadata(nvidiaSmi = "nvidia-smi"): Promise<Record<string, unknown>> {
  const text = await run(nvidiaSmi, [
    "--query-gpu=name,memory.total",
    "--format=csv,noheader,nounits",
  ]);
  const gpus = (text ?? "").split("\n").map((l) => l.split(",").map((x) => x.trim()))
    .filter((f) => f.length >= 2 && f[0])
    .map(([name, mib]) => ({ name, memoryTotal: String(Number(mib) * 2 ** 20) }));
  return gpus.length ? { gpu: gpus[0].name, gpu_count: gpus.length, gpu_nvidia: gpus } : {};
}

async function run(cmd: string, args: string[]): Promise<string | null> {
  try {
    const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "null" }).output();
    return out.success ? new TextDecoder().decode(out.stdout) : null;
  } catch {
    return null; // not installed
  }
}

function readProc(path: string): string | null {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return null;
  }
}

export interface MetadataInput {
  /** The `nvidia-smi` to ask for GPUs (tests give a stand-in). */
  nvidiaSmi?: string;
  backend?: { name: string; description: string; devices: number; replicas: number };
  /** The folder the run's files are written in. */
  root: string;
  startedAt: Date;
  email?: string;
}

/** `wandb-metadata.json`: the official client's keys where they exist, plus Deno's own. */
export async function runMetadata(m: MetadataInput): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {
    os: `${Deno.build.os}-${osRelease()}-${Deno.build.arch}`,
    deno:
      `Deno ${Deno.version.deno} (V8 ${Deno.version.v8}, TypeScript ${Deno.version.typescript})`,
    startedAt: m.startedAt.toISOString(),
    args: Deno.args,
    program: programPath(),
    root: m.root,
    host: hostname(),
    executable: Deno.execPath(),
    cpu_count_logical: navigator.hardwareConcurrency,
  };
  try {
    out.memory = { total: String(Deno.systemMemoryInfo().total) };
  } catch {
    // not available
  }
  Object.assign(out, await gpuMetadata(m.nvidiaSmi));
  const git = await gitInfo();
  if (git) {
    out.git = git;
    out.codePath = programPath();
  }
  if (m.backend) {
    out.backend = m.backend.name;
    out.backend_description = m.backend.description;
    out.devices = m.backend.devices;
    out.replicas = m.backend.replicas;
  }
  return out;
}

/** The commit (and origin) of the repository this code runs from, when git can say. */
export async function gitInfo(): Promise<{ commit: string; remote?: string } | null> {
  const dir = new URL("../..", import.meta.url);
  if (dir.protocol !== "file:") return null;
  const git = async (...args: string[]) => {
    try {
      const out = await new Deno.Command("git", {
        args: ["-C", dir.pathname, ...args],
        stdout: "piped",
        stderr: "null",
      }).output();
      return out.success ? new TextDecoder().decode(out.stdout).trim() : undefined;
    } catch {
      return undefined;
    }
  };
  const commit = await git("rev-parse", "HEAD");
  if (!commit) return null;
  const remote = await git("remote", "get-url", "origin");
  return remote ? { remote, commit } : { commit };
}

export function programPath(): string {
  try {
    return new URL(Deno.mainModule).pathname;
  } catch {
    return "deno";
  }
}

export function hostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "localhost";
  }
}

function osRelease(): string {
  try {
    return Deno.osRelease();
  } catch {
    return "unknown";
  }
}

/**
 * Checks before a run creates anything: the run name, the local inputs (train and validation
 * shards, the pretrained checkpoint, the label mapping) and the output folders. A failure names
 * the key and the path; nothing has been written at that point. Remote inputs (http(s), gs://,
 * pipe:) are opened by the loader, whose errors name the shard.
 */
import { requireFlaxFormat } from "../checkpoint/convert.ts";
import { isGsUrl } from "../gcs/url.ts";
import type { Config } from "../config/mod.ts";
import { checkLocalShards, isLocalShard, localPath } from "../data/open_file.ts";
import { expandShardSpec } from "../data/spec.ts";
import { TrainingError } from "./run_state.ts";

export interface RunPaths {
  /** Checkpoints: a local folder or gs:// prefix. */
  outDir: string;
  /** metrics.jsonl, metrics.html, config.json: outDir, or runs/{name} for a gs:// outDir. */
  logDir: string;
}

export async function checkRun(config: Config): Promise<RunPaths> {
  const name = config.name as string;
  if (!name || /[/\\]/.test(name) || name === "." || name === "..") {
    throw new TrainingError(
      `name ${JSON.stringify(name)} is not a file name: the run's files are ` +
        "<output-dir>/<name>-last.msgpack and so on; put folders in --output-dir instead",
    );
  }
  const outDir = (config["output-dir"] as string | undefined) ?? `runs/${name}`;
  const logDir = isGsUrl(outDir) ? `runs/${name}` : outDir;
  if (!config["train-dataset-shards"]) {
    throw new TrainingError('"train-dataset-shards" is not set: give the shards to train on');
  }
  await checkShards("train-dataset-shards", config["train-dataset-shards"] as string, false);
  if (config["valid-dataset-shards"]) {
    await checkShards("valid-dataset-shards", config["valid-dataset-shards"] as string, true);
  }
  for (const key of ["pretrained-ckpt", "label-mapping"] as const) {
    const url = config[key] as string | null;
    if (url && !isGsUrl(url)) await checkFile(key, url);
  }
  const ckpt = config["pretrained-ckpt"] as string | null;
  if (ckpt && !isGsUrl(ckpt)) {
    try {
      await requireFlaxFormat(ckpt, ckpt);
    } catch (e) {
      throw new TrainingError(`"pretrained-ckpt": ${(e as Error).message}`);
    }
  }
  if (!isGsUrl(outDir)) await checkFolder("output-dir", outDir);
  if (logDir !== outDir) await checkFolder("log folder", logDir);
  return { outDir, logDir };
}

/**
 * Training shards: as the loader checks them (none of the local shards exists: an error; some
 * missing: counted skips). Validation shards: every local one must exist, since an evaluation
 * that silently reads a part of its set gives numbers that cannot be compared.
 */
async function checkShards(key: string, spec: string, every: boolean): Promise<void> {
  let urls: string[];
  try {
    urls = expandShardSpec(spec);
    checkLocalShards(urls, spec);
  } catch (e) {
    throw new TrainingError(`"${key}": ${(e as Error).message}`);
  }
  if (!every) return;
  const missing: string[] = [];
  for (const u of urls.filter(isLocalShard)) {
    try {
      if (!(await Deno.stat(localPath(u))).isFile) missing.push(`${u} (not a file)`);
    } catch (e) {
      missing.push(e instanceof Deno.errors.NotFound ? u : `${u} (${(e as Error).message})`);
    }
  }
  if (missing.length) {
    const shown = missing.slice(0, 5).join(", ") + (missing.length > 5 ? ", ..." : "");
    throw new TrainingError(
      `"${key}": ${missing.length} of ${urls.length} shards cannot be read: ${shown}`,
    );
  }
}

async function checkFile(key: string, path: string): Promise<void> {
  try {
    if ((await Deno.stat(path)).isFile) return;
    throw new TrainingError(`"${key}": ${path} is not a file`);
  } catch (e) {
    if (e instanceof TrainingError) throw e;
    const why = e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message;
    throw new TrainingError(`"${key}": ${path}: ${why}`);
  }
}

/** The folder exists and is a folder, or its nearest existing parent is a folder. */
async function checkFolder(what: string, dir: string): Promise<void> {
  let path = dir;
  for (;;) {
    try {
      const info = await Deno.stat(path);
      if (!info.isDirectory) {
        throw new TrainingError(`${what} ${dir}: ${path} exists and is not a folder`);
      }
      if (path === dir) await checkWritable(what, dir);
      return;
    } catch (e) {
      if (e instanceof TrainingError) throw e;
      if (!(e instanceof Deno.errors.NotFound)) {
        throw new TrainingError(`${what} ${dir}: ${(e as Error).message}`);
      }
      const parent = path.replace(/\/+[^/]*\/*$/, "");
      if (parent === path || parent === "") return;
      path = parent;
    }
  }
}

/** A probe file, created and removed at once: the run's saves would fail there otherwise. */
async function checkWritable(what: string, dir: string): Promise<void> {
  const probe = `${dir}/.write-probe-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    await Deno.writeFile(probe, new Uint8Array(0), { createNew: true });
  } catch (e) {
    throw new TrainingError(`${what} ${dir} is not writable: ${(e as Error).message}`);
  }
  await Deno.remove(probe).catch(() => {});
}

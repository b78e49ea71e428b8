/**
 * Training state for resume, saved as one Flax-msgpack file (readable by
 * `flax.serialization.msgpack_restore`) whose tree is:
 *
 * ```
 * { format: "deit3-deno/train-state/1",
 *   params: {...}, opt_state: {...},      // trees of arrays, Flax names
 *   step: <int>,                          // msgpack integer
 *   rng: {...},                           // named PRNG keys (u32 arrays), e.g. {dropout, mixup}
 *   data: {...},                          // data position: plain numbers/strings (epoch, offset, ...)
 *   config: "<JSON text>" }               // the run's config, as a msgpack str holding JSON
 * ```
 *
 * Saves are atomic (temp file + rename locally; upload-then-replace on gs://), so a crash
 * mid-write never leaves a broken checkpoint under the final name.
 */
import { isHostTensor } from "../ir/host_tensor.ts";
import { CheckpointError } from "./errors.ts";
import { encodeFlaxMsgpack, readFlaxMsgpackFile } from "./flax_msgpack.ts";
import { withLocalInput, writeOutput } from "./storage.ts";
import { isTree, type Tree } from "./tree.ts";

export const TRAIN_STATE_FORMAT = "deit3-deno/train-state/1";

export interface TrainingState {
  params: Tree;
  optState: Tree;
  step: number;
  rng: Tree;
  /** Where the data loader stands (epoch, sample offset, shard, ...): plain values or arrays. */
  data: Tree;
  config: Record<string, unknown>;
}

/** Saves `state` to a local path or gs:// URL, atomically. */
export async function saveTrainingState(url: string, state: TrainingState): Promise<void> {
  if (!Number.isSafeInteger(state.step) || state.step < 0) {
    throw new CheckpointError(
      url,
      "step",
      `step must be a non-negative integer, got ${state.step}`,
    );
  }
  const tree: Tree = {
    format: TRAIN_STATE_FORMAT,
    params: state.params,
    opt_state: state.optState,
    step: state.step,
    rng: state.rng,
    data: state.data,
    config: JSON.stringify(state.config),
  };
  try {
    await writeOutput(url, encodeFlaxMsgpack(tree));
  } catch (e) {
    if (e instanceof CheckpointError && e.file === url) throw e;
    throw new CheckpointError(url, (e as { key?: string }).key, (e as Error).message);
  }
}

/** Loads a state saved by saveTrainingState, checking that every part is present and typed. */
export async function loadTrainingState(url: string): Promise<TrainingState> {
  const tree = await withLocalInput(url, async (path) => {
    try {
      return await readFlaxMsgpackFile(path);
    } catch (e) {
      if (e instanceof CheckpointError) throw new CheckpointError(url, e.key, e.problem);
      throw e;
    }
  });
  const fail = (key: string, why: string) => new CheckpointError(url, key, why);
  if (tree.format !== TRAIN_STATE_FORMAT) {
    throw fail(
      "format",
      `not a training state (format ${
        JSON.stringify(tree.format ?? null)
      }, expected "${TRAIN_STATE_FORMAT}")`,
    );
  }
  for (const key of ["params", "opt_state", "rng", "data"]) {
    if (!isTree(tree[key])) throw fail(key, "missing or not a map");
  }
  const step = tree.step;
  if (typeof step !== "number" || !Number.isSafeInteger(step) || step < 0) {
    throw fail("step", `not a non-negative integer (${describe(step)})`);
  }
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(tree.config as string);
  } catch {
    throw fail("config", "not a JSON string");
  }
  if (!config || typeof config !== "object" || Array.isArray(config)) {
    throw fail("config", "not a JSON object");
  }
  return {
    params: tree.params as Tree,
    optState: tree.opt_state as Tree,
    step,
    rng: tree.rng as Tree,
    data: tree.data as Tree,
    config,
  };
}

function describe(x: unknown): string {
  return isHostTensor(x) ? `an array of shape [${x.shape}]` : JSON.stringify(x) ?? String(x);
}

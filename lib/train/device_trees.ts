/** Moving pytrees between the host and a backend, and freeing the device arrays a step replaced. */
import type { Backend, DeviceArray } from "../backend/backend.ts";
import type { HostTensor } from "../ir/host_tensor.ts";
import { flatten, leavesWithPaths, unflatten } from "../ir/pytree.ts";

export class DeviceTrees {
  constructor(readonly backend: Backend) {}

  async upload(tree: unknown): Promise<unknown> {
    const { leaves, def } = flatten<HostTensor>(tree);
    return unflatten(def, await Promise.all(leaves.map((l) => this.backend.fromHost(l))));
  }

  /** `trees[d]` on local device d (all of one structure): one tree of per-device arrays. */
  async uploadPerDevice(trees: readonly unknown[]): Promise<unknown> {
    const flat = trees.map((t) => flatten<HostTensor>(t));
    const leaves = await Promise.all(
      flat[0].leaves.map((_, i) => this.backend.fromHostPerDevice(flat.map((f) => f.leaves[i]))),
    );
    return unflatten(flat[0].def, leaves);
  }

  async download(tree: unknown): Promise<unknown> {
    const { leaves, def } = flatten<DeviceArray>(tree);
    return unflatten(def, await Promise.all(leaves.map((l) => this.backend.toHost(l))));
  }

  /** Reads a tree of scalars (metrics) in one round of readbacks, then frees them. */
  async scalars(tree: unknown): Promise<Record<string, number>> {
    // One round of readbacks for all metrics (a GPU round trip each when read one by one).
    const leaves = leavesWithPaths<DeviceArray>(tree);
    const host = await Promise.all(leaves.map(([, v]) => this.backend.toHost(v)));
    for (const [, v] of leaves) this.backend.free(v);
    return Object.fromEntries(leaves.map(([k], i) => [k, host[i].data[0]]));
  }

  /** Frees the leaves of `old` that `kept` does not reuse. */
  freeReplaced(old: unknown, kept: unknown): void {
    const keep = new Set(flatten(kept).leaves);
    for (const l of flatten<DeviceArray>(old).leaves) if (!keep.has(l)) this.backend.free(l);
  }
}

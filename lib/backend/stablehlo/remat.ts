/**
 * Rematerialization barriers. `checkpoint` (lib/autodiff/checkpoint.ts) makes the backward pass
 * read clones of a segment's forward nodes. XLA's CSE would merge each clone with its original
 * (same op, same inputs) and keep the activations alive after all. As JAX does, the inputs that a
 * group of clones reads from outside the group go through one `stablehlo.optimization_barrier`,
 * so the recomputation has distinct operands and cannot be merged back.
 *
 * Clones are tagged in the IR: `Tensor.rematOf` names the forward node a clone recomputes.
 */
import { Primitive } from "../../ir/primitive.ts";
import type { Tensor } from "../../ir/tensor.ts";

export interface RematPlan {
  /** Clone node -> index of its group (connected clones) in `barrierInputs`. */
  groupOf: Map<Tensor, number>;
  /** Per group: the values, defined before every clone of the group, that pass the barrier. */
  barrierInputs: Tensor[][];
}

/** Finds the clone groups among `nodes` and the inputs each group's barrier takes. */
export function planRematBarriers(nodes: readonly Tensor[]): RematPlan {
  const originalOf = findClones(nodes);
  const clones = [...originalOf.keys()].sort((a, b) => a.id - b.id);
  // Union-find over clone -> clone input edges.
  const parent = new Map<Tensor, Tensor>(clones.map((c) => [c, c]));
  const root = (t: Tensor): Tensor => {
    let r = t;
    while (parent.get(r) !== r) r = parent.get(r)!;
    parent.set(t, r);
    return r;
  };
  for (const c of clones) {
    for (const inp of c.inputs) if (originalOf.has(inp)) parent.set(root(inp), root(c));
  }
  const members = new Map<Tensor, Tensor[]>();
  for (const c of clones) {
    const r = root(c);
    let list = members.get(r);
    if (!list) members.set(r, list = []);
    list.push(c);
  }
  const groupOf = new Map<Tensor, number>();
  const barrierInputs: Tensor[][] = [];
  // Groups in order of their first clone; each group's members are already sorted by id.
  const groups = [...members.values()].sort((a, b) => a[0].id - b[0].id);
  for (const group of groups) {
    const first = group[0].id;
    const inputs = new Set<Tensor>();
    for (const c of group) {
      for (const inp of c.inputs) {
        // Only values created before the whole group can feed its barrier (ids grow along
        // dependencies, so these never depend on a clone of the group). Constants need none.
        if (!originalOf.has(inp) && inp.id < first && inp.prim !== Primitive.Constant) {
          inputs.add(inp);
        }
      }
    }
    if (inputs.size === 0) continue;
    const index = barrierInputs.length;
    barrierInputs.push([...inputs].sort((a, b) => a.id - b.id));
    for (const c of group) groupOf.set(c, index);
  }
  return { groupOf, barrierInputs };
}

/** Clone -> original, for every node of `nodes` that recomputes a `checkpoint` segment's. */
function findClones(nodes: readonly Tensor[]): Map<Tensor, Tensor> {
  const originalOf = new Map<Tensor, Tensor>();
  // `recompute` segments (no barrier) are left to XLA, which may merge them back
  for (const n of nodes) if (n.rematOf?.segment?.barrier) originalOf.set(n, n.rematOf);
  return originalOf;
}

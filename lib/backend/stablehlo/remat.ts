/**
 * Rematerialization barriers. `checkpoint` (lib/autodiff/checkpoint.ts) makes the backward pass
 * read clones of a segment's forward nodes. XLA's CSE would merge each clone with its original
 * (same op, same inputs) and keep the activations alive after all. As JAX does, the inputs that a
 * group of clones reads from outside the group go through one `stablehlo.optimization_barrier`,
 * so the recomputation has distinct operands and cannot be merged back.
 *
 * Clones are recognised structurally: a clone shares its original's `params` object (the cloner
 * reuses it), has the same primitive, shape and dtype, and each of its inputs is either the
 * original's input itself or a clone of it.
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

/** Clone -> original, for every node of `nodes` that is a structural clone of another. */
function findClones(nodes: readonly Tensor[]): Map<Tensor, Tensor> {
  const byParams = new Map<object, Tensor[]>();
  for (const n of nodes) {
    if (n.inputs.length === 0) continue;
    const key = n.params as object;
    let list = byParams.get(key);
    if (!list) byParams.set(key, list = []);
    list.push(n);
  }
  const originalOf = new Map<Tensor, Tensor>();
  const candidates = [...byParams.values()].filter((l) => l.length > 1).flat()
    .sort((a, b) => a.id - b.id);
  // In id order, so that a node's inputs are classified before the node.
  for (const c of candidates) {
    const group = byParams.get(c.params as object)!;
    const original = group.find((o) => o.id < c.id && !originalOf.has(o) && isCloneOf(c, o));
    if (original) originalOf.set(c, original);
  }
  return originalOf;

  function isCloneOf(c: Tensor, o: Tensor): boolean {
    return c.prim === o.prim && c.dtype === o.dtype && c.inputs.length === o.inputs.length &&
      c.shape.every((d, i) => d === o.shape[i]) &&
      c.inputs.every((inp, i) => inp === o.inputs[i] || originalOf.get(inp) === o.inputs[i]);
  }
}

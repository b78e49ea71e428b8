/**
 * Index arithmetic for fusion: how a node's elements are addressed from a fused loop's domain
 * (linear forms over the loop indices), and strided views for matmul operands. Movement ops
 * (broadcast, transpose, slice, most reshapes) become index maps, so they cost no memory pass.
 */

/** `k + sum_d c[d] * i_d` over the loop indices i of a fused domain. */
export interface Lin {
  c: number[];
  k: number;
}

/** A node's multi-index as linear forms of the domain indices, one per node dimension. */
export type IndexMap = Lin[];

export function identityMap(shape: readonly number[]): IndexMap {
  return shape.map((_, d) => ({ c: shape.map((_, e) => (e === d ? 1 : 0)), k: 0 }));
}

export function zeroLin(rank: number): Lin {
  return { c: new Array<number>(rank).fill(0), k: 0 };
}

/** broadcast_in_dim: operand dim i reads output dim dims[i] (or 0 where the operand has 1). */
export function broadcastMap(
  out: IndexMap,
  inShape: readonly number[],
  dims: readonly number[],
  rank: number,
): IndexMap {
  return inShape.map((n, i) => (n === 1 ? zeroLin(rank) : out[dims[i]]));
}

/** transpose: operand dim perm[d] is output dim d. */
export function transposeMap(out: IndexMap, perm: readonly number[]): IndexMap {
  const m = new Array<Lin>(perm.length);
  perm.forEach((p, d) => (m[p] = out[d]));
  return m;
}

/** slice: operand index = start + stride * output index. */
export function sliceMap(
  out: IndexMap,
  start: readonly number[],
  strides: readonly number[],
): IndexMap {
  return out.map((l, d) => addLin(scaleLin(l, strides[d]), start[d]));
}

/**
 * reshape: the operand's multi-index when it is linear in the output's, that is when every
 * operand dim is a run of consecutive output dims (a split of operand dims); null otherwise.
 */
export function reshapeMap(
  out: IndexMap,
  outShape: readonly number[],
  inShape: readonly number[],
  rank: number,
): IndexMap | null {
  const outDims = outShape.map((n, d) => [n, d]).filter(([n]) => n !== 1);
  const m: IndexMap = [];
  let p = 0;
  for (const n of inShape) {
    if (n === 1) {
      m.push(zeroLin(rank));
      continue;
    }
    const group: number[] = [];
    let prod = 1;
    while (prod < n && p < outDims.length) {
      prod *= outDims[p][0];
      group.push(outDims[p][1]);
      p++;
    }
    if (prod !== n) return null;
    let lin = zeroLin(rank), scale = 1;
    for (let g = group.length - 1; g >= 0; g--) {
      lin = sumLin(lin, scaleLin(out[group[g]], scale));
      scale *= outShape[group[g]];
    }
    m.push(lin);
  }
  return p === outDims.length ? m : null;
}

/** The flat (row-major) element index of a node addressed by `m`. */
export function flatLin(m: IndexMap, shape: readonly number[], rank: number): Lin {
  let lin = zeroLin(rank), stride = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1) lin = sumLin(lin, scaleLin(m[d], stride));
    stride *= shape[d];
  }
  return lin;
}

export function linKey(l: Lin): string {
  return `${l.c.join(",")}+${l.k}`;
}

export function mapKey(m: IndexMap): string {
  return m.map(linKey).join(";");
}

// ---------------------------------------------------------------- strided views

/** A strided view of a contiguous buffer, in elements. */
export interface View {
  offset: number;
  shape: number[];
  strides: number[];
}

export function contiguousView(shape: readonly number[]): View {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d];
  }
  return { offset: 0, shape: [...shape], strides };
}

export function transposeView(v: View, perm: readonly number[]): View {
  return {
    offset: v.offset,
    shape: perm.map((p) => v.shape[p]),
    strides: perm.map((p) => v.strides[p]),
  };
}

/**
 * Reshape without a copy when possible (numpy's rule): each run of old dims merged into or
 * split from new dims must be contiguous within itself. Null when a copy would be needed.
 */
export function reshapeView(v: View, shape: readonly number[]): View | null {
  const old = v.shape.map((n, d) => [n, v.strides[d]]).filter(([n]) => n !== 1);
  const strides = new Array<number>(shape.length).fill(0);
  const newDims = shape.map((n, d) => [n, d]).filter(([n]) => n !== 1);
  let oi = 0, ni = 0;
  while (oi < old.length && ni < newDims.length) {
    // grow runs [oi, oj) and [ni, nj) until their products match
    let oj = oi + 1, nj = ni + 1;
    let op = old[oi][0], np = newDims[ni][0];
    while (op !== np) {
      if (op < np) op *= old[oj++]?.[0] ?? NaN;
      else np *= newDims[nj++]?.[0] ?? NaN;
      if (Number.isNaN(op) || Number.isNaN(np)) return null;
    }
    for (let k = oi; k < oj - 1; k++) {
      if (old[k][1] !== old[k + 1][0] * old[k + 1][1]) return null;
    }
    let s = old[oj - 1][1];
    for (let k = nj - 1; k >= ni; k--) {
      strides[newDims[k][1]] = s;
      s *= newDims[k][0];
    }
    oi = oj;
    ni = nj;
  }
  if (oi !== old.length || ni !== newDims.length) return null;
  return { offset: v.offset, shape: [...shape], strides };
}

/**
 * Merges a list of (size, stride) dims, in row-major order, into as few as possible; size-1
 * dims drop out. Returns the merged list (empty for a single element).
 */
export function mergeDims(dims: readonly [number, number][]): [number, number][] {
  const out: [number, number][] = [];
  for (const [n, s] of dims) {
    if (n === 1) continue;
    const last = out[out.length - 1];
    if (last && last[1] === n * s) {
      last[0] *= n;
      last[1] = s;
    } else out.push([n, s]);
  }
  return out;
}

function scaleLin(l: Lin, s: number): Lin {
  return { c: l.c.map((v) => v * s), k: l.k * s };
}

function addLin(l: Lin, k: number): Lin {
  return { c: l.c, k: l.k + k };
}

function sumLin(a: Lin, b: Lin): Lin {
  return { c: a.c.map((v, i) => v + b.c[i]), k: a.k + b.k };
}

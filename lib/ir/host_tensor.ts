import { allocArray, type DType, type TypedArray } from "./dtype.ts";

/**
 * A dense, row-major (C order) array on the host. This is the exchange format between
 * backends, checkpoints and the data loader. `data.length` equals the product of `shape`.
 */
export interface HostTensor {
  shape: number[];
  dtype: DType;
  data: TypedArray;
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function hostTensor(
  shape: number[],
  dtype: DType,
  data?: TypedArray | ArrayLike<number>,
): HostTensor {
  const n = numel(shape);
  const out = allocArray(dtype, n);
  if (data !== undefined) {
    if (data.length !== n) {
      throw new Error(
        `hostTensor: ${data.length} values given for shape [${shape}] (${n} elements)`,
      );
    }
    out.set(data as ArrayLike<number>);
  }
  return { shape: [...shape], dtype, data: out };
}

/** Row-major strides in elements. */
export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

export function isHostTensor(x: unknown): x is HostTensor {
  return typeof x === "object" && x !== null && "shape" in x && "dtype" in x && "data" in x &&
    ArrayBuffer.isView((x as HostTensor).data);
}

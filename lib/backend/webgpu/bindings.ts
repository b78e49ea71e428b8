/**
 * How kernels reach their storage buffers. Every access goes through small accessor
 * functions (`ld_bufK`, `ld4_bufK`, `st_bufK`, `st4_bufK`, inlined by the shader compiler), so
 * the rest of the code generator does not care whether a binding is declared as scalars or
 * vec4s, or whether it is split into several bindings: a tensor larger than the adapter's
 * `maxStorageBufferBindingSize` is bound as consecutive windows ("chunks") of one buffer and
 * the accessors pick the window.
 */
import type { Tensor } from "../../ir/tensor.ts";
import { wgslType } from "./storage.ts";

/** Splitting of large bindings, from the adapter limits. */
export interface ChunkPolicy {
  /** Largest binding in bytes: a multiple of the offset alignment and of 16. */
  chunkBytes: number;
}

export function chunkPolicy(maxBindingBytes: number, offsetAlignment: number): ChunkPolicy {
  const align = Math.max(16, offsetAlignment);
  return { chunkBytes: Math.floor(maxBindingBytes / align) * align };
}

/** Bindings (windows) a node of `n` elements takes. */
export function chunkCount(size: number, p: ChunkPolicy): number {
  return Math.max(1, Math.ceil((size * 4) / p.chunkBytes));
}

export interface BindingSpec {
  name: string;
  node: Tensor;
  output: boolean;
  /** Declared as array<vec4<T>>. */
  vec4: boolean;
}

/** WGSL declarations and accessors; `first` is the first @binding index used. */
export function bindingSource(specs: BindingSpec[], p: ChunkPolicy): string {
  const lines: string[] = [];
  let slot = 0;
  for (const s of specs) {
    const t = wgslType(s.node.dtype);
    const elem = s.vec4 ? `vec4<${t}>` : t;
    const access = s.output ? "read_write" : "read";
    const chunks = chunkCount(s.node.size, p);
    const names = chunks === 1
      ? [s.name]
      : Array.from({ length: chunks }, (_, c) => `${s.name}_${c}`);
    for (const n of names) {
      lines.push(`@group(0) @binding(${slot++}) var<storage, ${access}> ${n}: array<${elem}>;`);
    }
    lines.push(...accessors(s, t, names, p));
  }
  return lines.join("\n");
}

/** Binding slots each spec takes, in order (for the bind group). */
export function bindingSlots(nodes: readonly Tensor[], p: ChunkPolicy): number[] {
  return nodes.map((n) => chunkCount(n.size, p));
}

function accessors(s: BindingSpec, t: string, names: string[], p: ChunkPolicy): string[] {
  const v4 = `vec4<${t}>`;
  // Reads: whole-array element access per window, then the four shapes of access.
  const unit = s.vec4 ? 4 : 1; // elements per array entry
  const per = p.chunkBytes / 4 / unit; // entries per window
  const pick = (idx: string, body: (arr: string, j: string) => string) => {
    if (names.length === 1) return body(names[0], idx);
    const parts = names.map((n, c) =>
      c === names.length - 1
        ? `  return ${body(n, `${idx} - ${c * per}u`)};`
        : `  if (${idx} < ${(c + 1) * per}u) { return ${body(n, `${idx} - ${c * per}u`)}; }`
    );
    return parts.join("\n");
  };
  const wrap = (sig: string, body: string) =>
    body.includes("return") ? `fn ${sig} {\n${body}\n}` : `fn ${sig} { return ${body}; }`;
  const out: string[] = [];
  const entry = (idx: string) => pick(idx, (a, j) => `${a}[${j}]`);
  if (s.vec4) {
    out.push(wrap(`ld4_${s.name}(q: u32) -> ${v4}`, entry("q")));
    out.push(`fn ld_${s.name}(i: u32) -> ${t} { return ld4_${s.name}(i / 4u)[i % 4u]; }`);
  } else {
    out.push(wrap(`ld_${s.name}(i: u32) -> ${t}`, entry("i")));
    out.push(
      `fn ld4_${s.name}(q: u32) -> ${v4} { let i = 4u * q; ` +
        `return ${v4}(ld_${s.name}(i), ld_${s.name}(i + 1u), ld_${s.name}(i + 2u), ld_${s.name}(i + 3u)); }`,
    );
  }
  if (s.output) {
    const store = (idx: string, value: string) => {
      if (names.length === 1) return `  ${names[0]}[${idx}] = ${value};`;
      return names.map((n, c) => {
        const j = `${idx} - ${c * per}u`;
        if (c === names.length - 1) return `  else { ${n}[${j}] = ${value}; }`;
        return `  ${c === 0 ? "" : "else "}if (${idx} < ${
          (c + 1) * per
        }u) { ${n}[${j}] = ${value}; }`;
      }).join("\n");
    };
    if (s.vec4) {
      out.push(`fn st4_${s.name}(q: u32, v: ${v4}) {\n${store("q", "v")}\n}`);
    } else {
      out.push(`fn st_${s.name}(i: u32, v: ${t}) {\n${store("i", "v")}\n}`);
      out.push(
        `fn st4_${s.name}(q: u32, v: ${v4}) { let i = 4u * q; st_${s.name}(i, v.x); ` +
          `st_${s.name}(i + 1u, v.y); st_${s.name}(i + 2u, v.z); st_${s.name}(i + 3u, v.w); }`,
      );
    }
  }
  return out;
}

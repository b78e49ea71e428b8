/**
 * The f32 GEMM kernel of the CPU backend, emitted as WebAssembly SIMD (f32x4 with relaxed
 * fused multiply-add): C (+)= A @ B for one batch item, A and B given by byte strides so that
 * transposed operands are read in place. Goto-style blocking: B is packed per K block into
 * NR-wide panels, A per (MC x KC) block into MR-tall panels, and an MR x NR register tile
 * accumulates in f32 over each K block.
 */
import { buildModule, FuncBuilder, type Local, OP, SIMD } from "./wasm_emit.ts";

export interface GemmShape {
  /** Rows of the register tile. */
  mr: number;
  /** Columns of the register tile (a multiple of 4). */
  nr: number;
  /** K block length. */
  kc: number;
  /** Rows of A packed at once (a multiple of mr). */
  mc: number;
}

export const DEFAULT_GEMM: GemmShape = { mr: 6, nr: 8, kc: 512, mc: 96 };

/** Bytes of scratch a `gemm` call needs for packing, for N columns. */
export function gemmScratchBytes(s: GemmShape, n: number): number {
  const nPanels = Math.ceil(n / s.nr);
  return 4 * (s.mc * s.kc + nPanels * s.nr * s.kc + s.mr * s.nr) + 64;
}

/**
 * Emits the module. Exported function `gemm(a, sam, sak, b, sbk, sbn, c, ldc, m, n, k, scratch,
 * accumulate)`: addresses and strides in bytes; C rows are `ldc` bytes apart and contiguous
 * along N. `accumulate` = 0 overwrites C, 1 adds to it.
 */
export function gemmModuleBytes(
  s: GemmShape,
  memory: { minPages: number; maxPages: number; shared: boolean },
): Uint8Array<ArrayBuffer> {
  return buildModule([gemmFunc(s)], memory);
}

function gemmFunc(s: GemmShape): FuncBuilder {
  const { mr, nr, kc: KC, mc: MC } = s;
  const nv = nr / 4;
  const f = new FuncBuilder("gemm", [
    "i32",
    "i32",
    "i32",
    "i32",
    "i32",
    "i32",
    "i32",
    "i32",
    "i32",
    "i32",
    "i32",
    "i32",
    "i32",
  ]);
  const [a, sam, sak, b, sbk, sbn, c, ldc, M, N, K, scratch, accumulate] = f.params;
  const packA = f.local("i32"), packB = f.local("i32"), tile = f.local("i32");
  const k0 = f.local("i32"), kc = f.local("i32"), m0 = f.local("i32"), mc = f.local("i32");
  const jp = f.local("i32"), ip = f.local("i32"), kk = f.local("i32");
  const pa = f.local("i32"), pb = f.local("i32"), dst = f.local("i32"), src = f.local("i32");
  const rows = f.local("i32"), cols = f.local("i32"), r = f.local("i32"), j = f.local("i32");
  const cptr = f.local("i32"), addr = f.local("i32"), acc = f.local("i32");
  const ptrs: Local[] = Array.from({ length: Math.max(mr, nr) }, () => f.local("i32"));
  const val = f.local("f32");
  const vtmp = f.local("v128");
  const av = f.local("v128");
  const bv: Local[] = Array.from({ length: nv }, () => f.local("v128"));
  const accs: Local[][] = Array.from(
    { length: mr },
    () => Array.from({ length: nv }, () => f.local("v128")),
  );

  const min = (x: () => void, y: () => void) => {
    // select(x, y, x < y)
    x();
    y();
    x();
    y();
    f.op(OP.i32LtS).op(OP.select);
  };

  // scratch layout: packA [MC*KC], packB [nPanels*nr*KC], tile [mr*nr]
  f.get(scratch).set(packA);
  f.get(packA).i32(4 * MC * KC).op(OP.i32Add).set(packB);
  // tile goes after packB: packB needs ceil(N/nr)*nr*KC floats
  f.get(N).i32(nr - 1).op(OP.i32Add).i32(nr).emit(0x6d /* i32.div_s */).i32(nr * KC * 4)
    .op(OP.i32Mul).get(packB).op(OP.i32Add).set(tile);

  f.forRange(k0, 0, K, KC, () => {
    min(() => f.i32(KC), () => f.get(K).get(k0).op(OP.i32Sub));
    f.set(kc);
    // accumulate into C after the first K block
    f.get(accumulate).get(k0).i32(0).op(OP.i32GtS).emit(0x72 /* i32.or */).set(acc);

    // ---- pack B[k0:k0+kc, :] into panels [jp][k][nr]; columns past N repeat column N-1
    f.get(packB).set(dst);
    f.forRange(jp, 0, N, nr, () => {
      for (let q = 0; q < nr; q++) {
        // ptr_q = b + k0*sbk + min(jp+q, N-1)*sbn
        min(() => f.get(jp).i32(q).op(OP.i32Add), () => f.get(N).i32(1).op(OP.i32Sub));
        f.get(sbn).op(OP.i32Mul).get(b).op(OP.i32Add).get(k0).get(sbk).op(OP.i32Mul)
          .op(OP.i32Add).set(ptrs[q]);
      }
      // contiguous full panel: vector copy
      f.get(sbn).i32(4).op(OP.i32Eq).get(jp).i32(nr).op(OP.i32Add).get(N).op(OP.i32LeS)
        .op(0x71 /* i32.and */);
      f.ifElse(() => {
        f.forRange(kk, 0, kc, 1, () => {
          for (let v = 0; v < nv; v++) {
            f.get(dst).get(ptrs[0]).simdMem(SIMD.v128Load, 0, 16 * v).simdMem(
              SIMD.v128Store,
              0,
              16 * v,
            );
          }
          f.addTo(dst, 4 * nr).addTo(ptrs[0], sbk);
        });
      }, () => {
        f.forRange(kk, 0, kc, 1, () => {
          for (let q = 0; q < nr; q++) {
            f.get(dst).get(ptrs[q]).mem(OP.f32Load, 2).mem(OP.f32Store, 2, 4 * q);
            f.addTo(ptrs[q], sbk);
          }
          f.addTo(dst, 4 * nr);
        });
      });
    });

    f.forRange(m0, 0, M, MC, () => {
      min(() => f.i32(MC), () => f.get(M).get(m0).op(OP.i32Sub));
      f.set(mc);
      // ---- pack A[m0:m0+mc, k0:k0+kc] into panels [ip][k][mr]; rows past mc repeat the last
      f.get(packA).set(dst);
      f.forRange(ip, 0, mc, mr, () => {
        for (let q = 0; q < mr; q++) {
          min(() => f.get(ip).i32(q).op(OP.i32Add), () => f.get(mc).i32(1).op(OP.i32Sub));
          f.get(m0).op(OP.i32Add).get(sam).op(OP.i32Mul).get(a).op(OP.i32Add).get(k0).get(sak)
            .op(OP.i32Mul).op(OP.i32Add).set(ptrs[q]);
        }
        f.forRange(kk, 0, kc, 1, () => {
          for (let q = 0; q < mr; q++) {
            f.get(dst).get(ptrs[q]).mem(OP.f32Load, 2).mem(OP.f32Store, 2, 4 * q);
            f.addTo(ptrs[q], sak);
          }
          f.addTo(dst, 4 * mr);
        });
      });

      // ---- macro kernel
      f.forRange(jp, 0, N, nr, () => {
        f.forRange(ip, 0, mc, mr, () => {
          // pa = packA + ip*kc*4 (panel ip/mr has mr*kc floats); pb = packB + jp*kc*4
          f.get(ip).get(kc).op(OP.i32Mul).i32(2).op(OP.i32Shl).get(packA).op(OP.i32Add).set(pa);
          f.get(jp).get(kc).op(OP.i32Mul).i32(2).op(OP.i32Shl).get(packB).op(OP.i32Add).set(pb);
          for (const row of accs) for (const x of row) zero(f, x);
          f.forRange(kk, 0, kc, 1, () => {
            for (let v = 0; v < nv; v++) f.get(pb).simdMem(SIMD.v128Load, 0, 16 * v).set(bv[v]);
            for (let q = 0; q < mr; q++) {
              f.get(pa).simdMem(SIMD.v128Load32Splat, 2, 4 * q).set(av);
              for (let v = 0; v < nv; v++) {
                f.get(av).get(bv[v]).get(accs[q][v]).simd(SIMD.f32x4RelaxedMadd).set(accs[q][v]);
              }
            }
            f.addTo(pa, 4 * mr).addTo(pb, 4 * nr);
          });
          // cptr = c + (m0+ip)*ldc + jp*4
          f.get(m0).get(ip).op(OP.i32Add).get(ldc).op(OP.i32Mul).get(c).op(OP.i32Add).get(jp)
            .i32(2).op(OP.i32Shl).op(OP.i32Add).set(cptr);
          min(() => f.i32(mr), () => f.get(mc).get(ip).op(OP.i32Sub));
          f.set(rows);
          min(() => f.i32(nr), () => f.get(N).get(jp).op(OP.i32Sub));
          f.set(cols);
          f.get(rows).i32(mr).op(OP.i32Eq).get(cols).i32(nr).op(OP.i32Eq).op(0x71 /* and */);
          f.ifElse(() => {
            f.get(acc);
            f.ifElse(() => storeTile(true), () => storeTile(false));
          }, () => {
            // partial tile: spill to `tile`, then copy the valid part
            for (let q = 0; q < mr; q++) {
              for (let v = 0; v < nv; v++) {
                f.get(tile).get(accs[q][v]).simdMem(SIMD.v128Store, 0, 16 * (q * nv + v));
              }
            }
            f.forRange(r, 0, rows, 1, () => {
              // row r: whole vectors first, then single floats
              f.get(r).get(ldc).op(OP.i32Mul).get(cptr).op(OP.i32Add).set(addr);
              f.get(r).i32(4 * nr).op(OP.i32Mul).get(tile).op(OP.i32Add).set(src);
              f.i32(0).set(j);
              f.block(() => {
                f.loop(() => {
                  f.get(j).i32(4).op(OP.i32Add).get(cols).op(OP.i32GtS).emit(OP.brIf, 1);
                  f.get(addr).get(src).simdMem(SIMD.v128Load, 0).set(vtmp);
                  f.get(acc);
                  f.ifElse(() => {
                    f.get(vtmp).get(addr).simdMem(SIMD.v128Load, 0).simd(SIMD.f32x4Add).set(vtmp);
                  });
                  f.get(vtmp).simdMem(SIMD.v128Store, 0);
                  f.addTo(j, 4).addTo(addr, 16).addTo(src, 16);
                  f.emit(OP.br, 0);
                });
              });
              f.forRange(j, j, cols, 1, () => {
                f.get(src).mem(OP.f32Load, 2).set(val);
                f.get(acc);
                f.ifElse(() => {
                  f.get(val).get(addr).mem(OP.f32Load, 2).op(OP.f32Add).set(val);
                });
                f.get(addr).get(val).mem(OP.f32Store, 2);
                f.addTo(addr, 4).addTo(src, 4);
              });
            });
          });
        });
      });
    });
  });
  return f;

  function storeTile(add: boolean) {
    for (let q = 0; q < mr; q++) {
      // addr = cptr + q*ldc
      if (q === 0) f.get(cptr).set(addr);
      else f.addTo(addr, ldc);
      for (let v = 0; v < nv; v++) {
        f.get(addr);
        if (add) {
          f.get(addr).simdMem(SIMD.v128Load, 0, 16 * v).get(accs[q][v]).simd(SIMD.f32x4Add);
        } else f.get(accs[q][v]);
        f.simdMem(SIMD.v128Store, 0, 16 * v);
      }
    }
  }
}

function zero(f: FuncBuilder, x: Local): void {
  f.simd(0x0c, ...new Array(16).fill(0)).set(x);
}

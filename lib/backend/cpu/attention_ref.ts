/**
 * Reference kernels of the fused attention primitives (lib/ir/attention.ts): the direct
 * formulas in f64, rounded to f32 on store, one query row at a time. The fused executable's
 * kernel (attention.ts) is tested against these.
 */
import type { HostTensor } from "../../ir/host_tensor.ts";
import type { Primitive } from "../../ir/primitive.ts";
import type { Tensor } from "../../ir/tensor.ts";

/** [B, H, N, D + 1]: softmax(scale q k^T) v, then the row's log-sum-exp. */
export function attentionKernel(
  n: Tensor<Primitive.Attention>,
  [q, k, v]: HostTensor[],
): HostTensor {
  const [b, h, N, D] = q.shape, M = k.shape[2], { scale } = n.params;
  const out = new Float32Array(b * h * N * (D + 1));
  const s = new Float64Array(M), acc = new Float64Array(D);
  for (let bh = 0; bh < b * h; bh++) {
    const qo = bh * N * D, ko = bh * M * D;
    for (let i = 0; i < N; i++) {
      let m = -Infinity;
      for (let j = 0; j < M; j++) {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += q.data[qo + i * D + d] * k.data[ko + j * D + d];
        s[j] = scale * dot;
        if (s[j] > m) m = s[j];
      }
      let l = 0;
      acc.fill(0);
      for (let j = 0; j < M; j++) {
        const e = Math.exp(s[j] - m);
        l += e;
        for (let d = 0; d < D; d++) acc[d] += e * v.data[ko + j * D + d];
      }
      const o = (bh * N + i) * (D + 1);
      for (let d = 0; d < D; d++) out[o + d] = acc[d] / l;
      out[o + D] = m + Math.log(l);
    }
  }
  return { shape: [...n.shape], dtype: "f32", data: out };
}

/** [B, H, N + 2M, D]: dq, dk, dv, with the probabilities recomputed from the saved lse. */
export function attentionGradKernel(
  n: Tensor<Primitive.AttentionGrad>,
  [q, k, v, out, g]: HostTensor[],
): HostTensor {
  const [b, h, N, D] = q.shape, M = k.shape[2], { scale } = n.params;
  const R = N + 2 * M, G = g.shape[3]; // G = D: no lse cotangent
  const res = new Float32Array(b * h * R * D);
  const dq = new Float64Array(N * D), dk = new Float64Array(M * D), dv = new Float64Array(M * D);
  for (let bh = 0; bh < b * h; bh++) {
    const qo = bh * N * D, ko = bh * M * D;
    dq.fill(0);
    dk.fill(0);
    dv.fill(0);
    for (let i = 0; i < N; i++) {
      const po = (bh * N + i) * (D + 1), go = (bh * N + i) * G;
      const lse = out.data[po + D];
      let delta = G > D ? -g.data[go + D] : 0;
      for (let d = 0; d < D; d++) delta += g.data[go + d] * out.data[po + d];
      for (let j = 0; j < M; j++) {
        let dot = 0, dp = 0;
        for (let d = 0; d < D; d++) {
          dot += q.data[qo + i * D + d] * k.data[ko + j * D + d];
          dp += g.data[go + d] * v.data[ko + j * D + d];
        }
        const p = Math.exp(scale * dot - lse);
        const ds = scale * p * (dp - delta);
        for (let d = 0; d < D; d++) {
          dq[i * D + d] += ds * k.data[ko + j * D + d];
          dk[j * D + d] += ds * q.data[qo + i * D + d];
          dv[j * D + d] += p * g.data[go + d];
        }
      }
    }
    const o = bh * R * D;
    res.set(dq, o);
    res.set(dk, o + N * D);
    res.set(dv, o + (N + M) * D);
  }
  return { shape: [...n.shape], dtype: "f32", data: res };
}

/** The traced Mixup/CutMix of the train step against augment's host reference (mixBatchHost). */
import { CpuBackend } from "../../lib/backend/cpu/backend.ts";
import { evaluate } from "../../lib/backend/jit.ts";
import { mixBatchHost, sampleMixup } from "../../lib/augment/mixup.ts";
import { hostTensor } from "../../lib/ir/host_tensor.ts";
import { Rng } from "../../lib/ir/rng.ts";
import type { Tensor } from "../../lib/ir/tensor.ts";
import { applyMix } from "../../lib/train/step.ts";
import { assert, assertAllClose } from "../assert.ts";

const B = 6, H = 8, W = 8, C = 3, K = 5;

for (
  const [name, opts] of [["mixup", { mixup: 0.8, cutmix: 0 }], ["cutmix", {
    mixup: 0,
    cutmix: 1,
  }]] as const
) {
  Deno.test(`traced ${name} equals the host reference`, async () => {
    const rng = Rng.fromSeed(11);
    const images = Float32Array.from({ length: B * H * W * C }, () => rng.uniform());
    const labels = new Float32Array(B * K);
    for (let b = 0; b < B; b++) labels[b * K + (b % K)] = 1;
    const p = sampleMixup(Rng.fromSeed(5), { ...opts, batchSize: B, imageSize: H });
    assert(p.kind === name);
    const ref = mixBatchHost(images, labels, p, {
      batch: B,
      height: H,
      width: W,
      channels: C,
      classes: K,
    });
    const out = await evaluate(
      new CpuBackend(),
      (x: Tensor, y: Tensor, m: never) => {
        const [xi, yi] = applyMix(x, y, m);
        return { xi, yi };
      },
      hostTensor([B, H, W, C], "f32", images),
      hostTensor([B, K], "f32", labels),
      {
        perm: hostTensor([B], "i32", p.perm),
        imageLam: hostTensor([], "f32", [p.kind === "mixup" ? p.lam : 1]),
        labelLam: hostTensor([], "f32", [p.lam]),
        box: hostTensor([4], "i32", p.box ?? [0, 0, 0, 0]),
      },
    );
    assertAllClose(out.xi.data, ref.images, { atol: 1e-6 });
    assertAllClose(out.yi.data, ref.labels, { atol: 1e-6 });
  });
}

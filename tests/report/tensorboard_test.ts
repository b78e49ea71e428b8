/**
 * TensorBoard event files: the framing against known CRC-32C values, and a 60-step train run read
 * back with TensorBoard's own reader (`tensorboard` 2.21 in the peer venv,
 * ~/.cache/deit3-peers from ../shared/tools/peers.sh, or DEIT3_PEERS_PYTHON); that part skips
 * with a message where no Python with tensorboard is found.
 */
import { assert, assertEquals } from "../assert.ts";
import { crc32c, maskedCrc32c, tfRecord } from "../../lib/report/tensorboard.ts";
import { makeDataset, tinyConfig, withDir } from "../train/e2e_helpers.ts";

const TASK = new URL("../../tasks/train.ts", import.meta.url).pathname;

Deno.test("tensorboard: CRC-32C and TFRecord framing", () => {
  const enc = (s: string) => new TextEncoder().encode(s);
  // RFC 3720's check value, and crc32c of 32 zero bytes (RFC 3720 B.4).
  assertEquals(crc32c(enc("123456789")), 0xe3069283);
  assertEquals(crc32c(new Uint8Array(32)), 0x8a9136aa);
  // TFRecord's mask: rotate right 15, add 0xa282ead8 (mod 2^32).
  const c = 0xe3069283;
  assertEquals(maskedCrc32c(enc("123456789")), (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0);
  const rec = tfRecord(enc("abc"));
  const view = new DataView(rec.buffer);
  assertEquals(rec.length, 8 + 4 + 3 + 4);
  assertEquals(view.getBigUint64(0, true), 3n);
  assertEquals(view.getUint32(8, true), maskedCrc32c(rec.subarray(0, 8)));
  assertEquals(view.getUint32(15, true), maskedCrc32c(enc("abc")));
});

async function tensorboardPython(): Promise<string | null> {
  const home = Deno.env.get("HOME");
  for (
    const py of [
      Deno.env.get("DEIT3_PEERS_PYTHON"),
      home && `${home}/.cache/deit3-peers/bin/python`,
      "python3",
    ]
  ) {
    if (!py) continue;
    try {
      const out = await new Deno.Command(py, {
        args: ["-c", "import tensorboard.backend.event_processing.event_accumulator"],
        stdout: "null",
        stderr: "null",
      }).output();
      if (out.success) return py;
    } catch {
      // not there
    }
  }
  return null;
}

const READER = `
import json, sys, warnings
warnings.filterwarnings("ignore")
from tensorboard.backend.event_processing import event_accumulator as ea
acc = ea.EventAccumulator(sys.argv[1], size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
acc.Reload()
tags = acc.Tags()
out = {"scalars": {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags["scalars"]},
       "text": {t: [e.tensor_proto.string_val[0].decode() for e in acc.Tensors(t)]
                for t in tags["tensors"]}}
print(json.dumps(out))
`;

Deno.test("tensorboard: TensorBoard's reader finds every scalar of a 60-step run", async (t) => {
  const py = await tensorboardPython();
  if (!py) {
    console.warn(
      "tensorboard test skipped: no Python with tensorboard (run ../shared/tools/peers.sh or " +
        "set DEIT3_PEERS_PYTHON)",
    );
    return;
  }
  await withDir("deit3-tb-", async (dir) => {
    const data = await makeDataset(dir);
    const cfg = { ...tinyConfig(dir, data, 60), "log-interval": 10, "eval-interval": 30 };
    await Deno.writeTextFile(`${dir}/cfg.json`, JSON.stringify(cfg));
    const run = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", TASK, `${dir}/cfg.json`],
      env: { WANDB_MODE: "disabled", NO_COLOR: "1" },
    }).output();
    assertEquals(run.code, 0, new TextDecoder().decode(run.stderr));
    const files = [...Deno.readDirSync(`${dir}/out`)].filter((e) =>
      e.name.startsWith("events.out.tfevents.")
    );
    assertEquals(files.length, 1);
    const out = await new Deno.Command(py, {
      args: ["-c", READER, `${dir}/out`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
    const tb = JSON.parse(new TextDecoder().decode(out.stdout)) as {
      scalars: Record<string, [number, number][]>;
      text: Record<string, string[]>;
    };
    const metrics = (await Deno.readTextFile(`${dir}/out/metrics.jsonl`)).trim().split("\n")
      .map((l) => JSON.parse(l));
    let checked = 0;
    await t.step("every metrics.jsonl number is a scalar at its step", () => {
      const expected = new Map<string, [number, number][]>();
      for (const m of metrics) {
        for (const [k, v] of Object.entries(m)) {
          if (k === "step" || k === "time" || typeof v !== "number") continue;
          if (!expected.has(k)) expected.set(k, []);
          expected.get(k)!.push([m.step, Math.fround(v)]);
          checked++;
        }
      }
      assertEquals(new Set(Object.keys(tb.scalars)), new Set(expected.keys()));
      for (const [k, pts] of expected) assertEquals(tb.scalars[k], pts, k);
    });
    assert(checked > 50, `${checked} values`);
    assertEquals(
      metrics.filter((m) => "train/loss" in m).map((m) => m.step),
      [10, 20, 30, 40, 50, 60],
    );
    const config = tb.text.config?.[0] ?? "";
    assert(config.includes('"log-interval": 10'), config);
  });
});

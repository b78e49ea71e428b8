/**
 * One process of a multi-host job for tests/train/distributed_resume_test.ts, with the pieces
 * the training loop uses to stop and resume: its own 1/P train loader, the PositionExchange
 * through process 0's key-value store, and RunState's save and resume. Usage:
 *   deno run -A distributed_resume_worker.ts --num-processes P --process-id I
 *     --coordinator H:PORT --shards a.tar,b.tar --out DIR --phase run|resume --steps K
 * `run` takes K batches (one per step) and process 0 saves the state of step K; every process
 * then prints the keys of the batch an uninterrupted run takes next. `resume` reads the state
 * and prints the keys of its first batch (or the error that refused the resume).
 */
import { resolveConfig } from "../../lib/config/mod.ts";
import { createTrainLoader, type TrainPosition } from "../../lib/data/loader.ts";
import { hostTensor } from "../../lib/ir/host_tensor.ts";
import { KvStore, PositionExchange, processTopology } from "../../lib/train/distributed.ts";
import { MetricWindow } from "../../lib/train/metric_window.ts";
import { RunState } from "../../lib/train/run_state.ts";
import { simpleTransform } from "../data/helpers.ts";

const args = [...Deno.args];
const take = (name: string) => {
  const i = args.indexOf(name);
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
};
const shards = take("--shards").split(","), out = take("--out");
const phase = take("--phase"), steps = Number(take("--steps"));
const config = resolveConfig(
  {
    "train-batch-size": 6,
    labels: 10,
    name: "dist",
    "output-dir": out,
    "init-seed": 1,
    "mixup-seed": 2,
    "dropout-seed": 3,
    "shuffle-seed": 4,
  },
  "<worker>",
  args,
);
const t = processTopology(config);
const state = new RunState(config, out, "dist", 1, () => {}, {
  index: t.processIndex,
  count: t.processCount,
});
const loaderFrom = (start: TrainPosition | undefined) =>
  createTrainLoader({
    shards,
    batchSize: 3,
    transform: simpleTransform(8),
    workers: 0,
    processIndex: t.processIndex,
    processCount: t.processCount,
    shuffleSeed: 4,
    shuffleBuffer: 4,
    shuffleInitial: 2,
    withKeys: true,
    log: () => {},
    start,
  });

if (phase === "run") {
  await using kv = await KvStore.connect(t, 20_000);
  const exchange = new PositionExchange<TrainPosition>(kv);
  const loader = loaderFrom(undefined);
  const it = loader[Symbol.asyncIterator]();
  for (let step = 1; step <= steps; step++) {
    await it.next();
    exchange.publish(step, loader.position());
  }
  if (t.processIndex === 0) {
    const w = hostTensor([2], "f32", [1, 2]);
    const positions = await exchange.gather(steps, loader.position());
    await state.save({ w }, { mu: { w } }, {
      step: steps,
      positions,
      window: new MetricWindow().state(),
    }, false);
  }
  const next = (await it.next()).value!.keys;
  await exchange.flush();
  await kv.allGather("done", "1"); // process 0 has saved before anyone reads
  await loader.close();
  console.log(JSON.stringify({ next }));
} else {
  try {
    const resumed = (await state.resume())!;
    const loader = loaderFrom(resumed.position);
    const b = await loader[Symbol.asyncIterator]().next();
    await loader.close();
    console.log(JSON.stringify({ step: resumed.step, next: b.value!.keys }));
  } catch (e) {
    console.log(JSON.stringify({ error: (e as Error).message }));
  }
}

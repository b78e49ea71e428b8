/**
 * One process of a multi-host job for tests/train/distributed_test.ts: resolves its topology
 * from the flags, meets the others at process 0's key-value store, and prints (as JSON) what it
 * would read, compute and write. Usage:
 *   deno run -A distributed_worker.ts --num-processes P --process-id I --coordinator H:P --step S
 */
import { resolveConfig } from "../../lib/config/mod.ts";
import { batchPlan } from "../../lib/train/run_config.ts";
import { ownedCount, trainShardVisits } from "../../lib/data/order.ts";
import {
  agreeOnStep,
  KvStore,
  processTopology,
  writesOutputs,
} from "../../lib/train/distributed.ts";

const args = [...Deno.args];
const stepAt = args.indexOf("--step");
const step = Number(args[stepAt + 1]);
args.splice(stepAt, 2);
const config = resolveConfig({ "train-batch-size": 48, labels: 10 }, "<worker>", args);
const t = processTopology(config);
await using kv = await KvStore.connect(t, 20_000);
const P = t.processCount, h = t.processIndex;
const SHARDS = 7, SEED = 3, VALID = [5, 9, 4];
// Two passes over the shuffled shard list: the positions this host reads.
const visits = [...trainShardVisits(SHARDS, SEED, {
  processIndex: h,
  processCount: P,
  workerIndex: 0,
  workerCount: 1,
}, 2)];
const valid = VALID.map((n, shard) => ownedCount(shard, n, h, P));
const { perHost, perReplica } = batchPlan(config, { processes: P, devices: 2 });
const batch = { perHost, perDevice: perReplica };
const gathered = await kv.allGather("hello", `process ${h}`);
let agreed: string;
try {
  await agreeOnStep(kv, step);
  agreed = "ok";
} catch (e) {
  agreed = (e as Error).message;
}
console.log(JSON.stringify({
  topology: t,
  visits,
  valid,
  batch,
  writes: writesOutputs(t),
  gathered,
  agreed,
}));

/**
 * One process of a multi-process CPU training job for tests/train/distributed_train_test.ts:
 * `train` on the config in CONFIG.json with the topology flags, stopping after `--stop-at`
 * steps when given. Prints the result as JSON. Usage:
 *   deno run -A distributed_train_worker.ts CONFIG.json --num-processes P --process-id I
 *     --coordinator H:PORT [--stop-at K]
 */
import { resolveConfig } from "../../lib/config/mod.ts";
import { train } from "../../lib/train/loop.ts";

const [path, ...args] = Deno.args;
const stop = args.indexOf("--stop-at");
const stopAtStep = stop >= 0 ? Number(args.splice(stop, 2)[1]) : undefined;
const json = JSON.parse(await Deno.readTextFile(path));
const r = await train(resolveConfig(json, path, args), { stopAtStep });
console.log(JSON.stringify(r));

/**
 * What a run sets up before its loop (loop.ts): the output folders, cleared of what a killed run
 * left; the starting state (fresh, pretrained, or resumed by run_state.ts); the backend, checked
 * against the job's processes; the W&B run; and the loop's own starting state (`openLoop`: the
 * compiled programs, the uploaded parameters, the open data).
 */
import type { Backend } from "../backend/backend.ts";
import type { TrainPosition } from "../data/loader.ts";
import type { HostTensor } from "../ir/host_tensor.ts";
import { leavesWithPaths } from "../ir/pytree.ts";
import type { DeviceTrees } from "./device_trees.ts";
import { Evaluator } from "./evaluate.ts";
import { MetricWindow } from "./metric_window.ts";
import { compileTrainPrograms, type StepShape, type TrainPrograms } from "./programs.ts";
import type { TrainStepConfig } from "./step.ts";
import { modelLine } from "./step_report.ts";
import { checkMemory } from "./memory.ts";
import { TrainData } from "./train_data.ts";
import { pjrtKeyValueStore } from "../backend/pjrt/kv_bridge.ts";
import { createBackend } from "../backend/select.ts";
import { removeStaleTemps } from "../checkpoint/atomic.ts";
import { loadPretrainedFile } from "../checkpoint/finetune.ts";
import type { Tree } from "../checkpoint/tree.ts";
import { type Config, configToJson } from "../config/mod.ts";
import { isGsUrl } from "../gcs/url.ts";
import { initViT } from "../model/init.ts";
import { initOptState } from "../optim/optimizer.ts";
import {
  cpuProcessSum,
  type KvStore,
  type PositionExchange,
  type Topology,
} from "./distributed.ts";
import { type RunLog, truncateMetrics } from "../report/logging.ts";
import { backendOptionsOf, type BatchPlan, loaderWorkers, vitConfigOf } from "./run_config.ts";
import { type Resumed, type RunState, TrainingError } from "./run_state.ts";
import { openRunReport, type RunReport } from "../report/report.ts";

/** Clears what a killed run left and writes config.json (process 0). */
export async function prepareOutputs(
  config: Config,
  outDir: string,
  logDir: string,
  resumedStep: number,
  log: RunLog,
): Promise<void> {
  const name = config.name;
  if (!isGsUrl(outDir)) {
    await Deno.mkdir(outDir, { recursive: true });
    for (const f of await removeStaleTemps(outDir, (t) => t.startsWith(`${name}-`))) {
      log.line(`removed ${outDir}/${f}, left by a killed write`);
    }
  }
  await Deno.mkdir(logDir, { recursive: true });
  await removeStaleTemps(logDir, (t) => t.startsWith("metrics."));
  const dropped = await truncateMetrics(logDir, resumedStep);
  if (dropped) log.line(`dropped ${dropped} records after step ${resumedStep} from metrics.jsonl`);
  await Deno.writeTextFile(`${logDir}/config.json`, configToJson(config));
}

/** Fresh parameters (or the pretrained ones) and a fresh optimizer state. */
export async function initialState(config: Config, log: RunLog): Promise<Resumed> {
  let params = initViT(vitConfigOf(config), config["init-seed"]) as Tree;
  const pretrained = config["pretrained-ckpt"];
  if (pretrained) {
    params = await loadPretrainedFile(pretrained, params, {
      labelMappingUrl: config["label-mapping"] ?? undefined,
    });
    log.line(`loaded pretrained parameters from ${pretrained}`);
  }
  return { params, opt: initOptState(params) as Tree, step: 0, evalPending: false };
}

/** The backend of a run and what to close with it (none for a backend the caller gave). */
export interface RunBackend {
  backend: Backend;
  close(): void;
}

/**
 * The backend from the config (or `given`), checked to run one replica per device of every
 * process. A CPU job of several processes sums its replicas through process 0
 * (cpu/cross_process.ts); PJRT plugins that join hosts (CUDA) find their peers through its store.
 */
export async function createRunBackend(
  config: Config,
  topology: Topology,
  kv: KvStore | null,
  log: RunLog,
  given?: Backend,
): Promise<RunBackend> {
  const processSum = kv && !given && config.backend === "cpu" ? await cpuProcessSum(kv) : null;
  let backend: Backend;
  try {
    backend = given ?? await createBackend(config.backend, {
      ...backendOptionsOf(config),
      job: kv
        ? {
          processIndex: topology.processIndex,
          processCount: topology.processCount,
          keyValueStore: pjrtKeyValueStore(kv),
        }
        : undefined,
      processes: processSum ?? undefined,
      log: (l) => log.line(l),
    });
  } catch (e) {
    processSum?.close();
    throw e;
  }
  const close = () => {
    if (!given) backend.dispose();
    processSum?.close();
  };
  if (config.backend === "auto" && backend.name === "cpu") {
    // Checked before anything was written with the activations left out (auto may pick a GPU);
    // on the CPU they are host memory too.
    try {
      checkMemory(config, undefined, "cpu");
    } catch (e) {
      close();
      throw e;
    }
  }
  const P = topology.processCount;
  if (backend.replicas !== backend.devices * P) {
    close();
    throw new TrainingError(
      `the ${backend.name} backend runs ${backend.replicas} replica(s) with ${backend.devices} ` +
        `device(s) here, not ${P} processes x ${backend.devices}: ` +
        (backend.name === "pjrt"
          ? "the PJRT plugin did not join the processes into one job (its client sees only " +
            "this host's devices)"
          : "multi-host training needs --backend pjrt or --backend cpu"),
    );
  }
  log.line(
    `backend: ${backend.name} (${backend.description}); ${P} process${P > 1 ? "es" : ""} x ` +
      `${backend.devices} device${backend.devices > 1 ? "s" : ""}` +
      (P > 1 ? `, this is process ${topology.processIndex}` : ""),
  );
  return { backend, close };
}

/**
 * The run's reports (report.ts): TensorBoard event files beside metrics.jsonl, and a W&B run when
 * an API key is set (or WANDB_MODE=offline), continuing a resumed one (its id kept in the state).
 */
export async function startReports(ctx: RunContext, step: number): Promise<RunReport | undefined> {
  const { config, state, log, backend } = ctx;
  if (!log.dir) return undefined; // process 0 reports
  const reports = await openRunReport({
    dir: log.dir,
    name: config.name,
    project: config.project,
    config: JSON.parse(configToJson(config)),
    resumeStep: step,
    history: log.events,
    wandbRunId: state.wandbRunId,
    backend: {
      name: backend.name,
      description: backend.description,
      devices: backend.devices,
      replicas: backend.replicas,
    },
    log: (l) => log.line(l),
  }).catch((e) => {
    throw new TrainingError((e as Error).message); // a WANDB_* variable W&B would refuse
  });
  state.wandbRunId = reports.runId;
  return reports;
}

/** What a run's loop works with, made once by `train`. */
export interface RunContext {
  readonly config: Config;
  readonly backend: Backend;
  readonly log: RunLog;
  readonly state: RunState;
  /** Interrupts the run (TrainOptions.signal). */
  readonly signal: AbortSignal | undefined;
  readonly topology: Topology;
  /** Multi-host: every process's data position, for process 0's saves. */
  readonly positions: PositionExchange<TrainPosition> | null;
}

/** The loop's state: where the run is, what it holds on the devices, what it runs with. */
export interface Loop {
  /** The step this process started (or resumed) at. */
  readonly start: number;
  step: number;
  params: unknown;
  opt: unknown;
  /** The data position after the last completed step (a cut step may have taken batches). */
  position: TrainPosition | undefined;
  savedStep: number;
  readonly window: MetricWindow;
  readonly data: TrainData;
  readonly programs: TrainPrograms;
  readonly evaluator: Evaluator | undefined;
  readonly reports: RunReport | undefined;
  /** The last queued step, whose metrics are not read yet (see Trainer.settle). */
  pending?: PendingStep;
}

/** A step queued on the device: its metrics come back while the next step is queued. */
export interface PendingStep {
  step: number;
  lr: number;
  metrics: Promise<Record<string, number>>;
  dataTime: number;
  computeTime: number;
}

/**
 * Describes the run, compiles its programs (the train step, the evaluation), uploads its state
 * and opens its data: the loop's starting state.
 */
export async function openLoop(
  ctx: RunContext,
  run: { plan: BatchPlan; step: TrainStepConfig; shape: StepShape; trees: DeviceTrees },
  from: Resumed,
  reports: RunReport | undefined,
): Promise<Loop> {
  const { config, log, backend, topology, state, signal } = ctx;
  const nParams = leavesWithPaths<HostTensor>(from.params)
    .reduce((s, [, t]) => s + t.data.length, 0);
  log.line(modelLine(run.step.vit, nParams, config["training-steps"], run.plan));
  // Compiling a large model takes a while (ViT-S on CPU: about a minute): say so.
  const tc = performance.now();
  log.line(`compiling the training step on ${backend.name}...`);
  const programs = await compileTrainPrograms(
    backend,
    run.step,
    run.shape,
    from.params,
    from.opt,
  );
  log.line(`compiled the training step in ${((performance.now() - tc) / 1000).toFixed(1)} s`);
  let evaluator: Evaluator | undefined;
  if (config["valid-dataset-shards"]) {
    evaluator = await Evaluator.create(
      backend,
      run.step,
      from.params,
      run.plan.validPerHost,
      (l) => log.line(l),
    );
    loaderWorkers(config, "valid-loader-workers", (l) => log.line(l));
    // A resumed run knows its validation set's size from its last eval: ETA from the first one.
    const last = log.events.findLast((e) => typeof e["val/samples"] === "number");
    evaluator.expectedSamples = last?.["val/samples"] as number | undefined;
  }
  const params = await run.trees.upload(from.params);
  const opt = await run.trees.upload(from.opt);
  const job = {
    index: topology.processIndex,
    count: topology.processCount,
    statePath: state.path("state"),
  };
  const data = TrainData.open(config, run.plan, run.shape, job, from.position, {
    log: (l) => log.line(l),
    signal,
  });
  const window = from.window ? MetricWindow.restore(from.window) : new MetricWindow();
  const position = data.position();
  return {
    start: from.step,
    step: from.step,
    params,
    opt,
    position,
    savedStep: -1,
    window,
    data,
    programs,
    evaluator,
    reports,
  };
}

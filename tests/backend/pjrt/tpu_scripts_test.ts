/**
 * scripts/tpu/launch.sh for real, through a stand-in `gcloud` (tests/backend/pjrt/tpu_gcloud.sh)
 * that runs each worker's --command as a local process in a home of its own, with a bare
 * environment whose PATH has no deno (as a non-interactive ssh shell on a TPU VM): a 2-process
 * training job on the CPU backend (`--backend cpu` after the config wins over launch.sh's
 * `--backend pjrt`). Checked: the gcloud calls and their flags, one coordinator (worker 0's
 * address), each worker reading its own shard, only worker 0 writing. setup.sh's command is
 * recorded (it would download) and checked for what a TPU VM needs.
 */
import { assert, assertEquals } from "../../assert.ts";
import { makeDataset, tinyConfig } from "../../train/e2e_helpers.ts";

const ROOT = new URL("../../../", import.meta.url).pathname.replace(/\/$/, "");
const GCLOUD = new URL("./tpu_gcloud.sh", import.meta.url).pathname;

async function denoDir(): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"] }).output();
  return JSON.parse(new TextDecoder().decode(out.stdout)).denoDir;
}

/** A PATH folder with the stand-in as `gcloud`, and the workers' homes as setup.sh leaves them. */
async function fakeSlice(dir: string, workers: number) {
  await Deno.mkdir(`${dir}/bin`);
  await Deno.copyFile(GCLOUD, `${dir}/bin/gcloud`);
  await Deno.chmod(`${dir}/bin/gcloud`, 0o755);
  for (let i = 0; i < workers; i++) {
    const home = `${dir}/worker-${i}`;
    await Deno.mkdir(`${home}/.deno/bin`, { recursive: true });
    await Deno.symlink(Deno.execPath(), `${home}/.deno/bin/deno`);
    await Deno.symlink(ROOT, `${home}/deit3-deno`);
  }
  await Deno.writeTextFile(`${dir}/calls`, "");
}

const env = async (dir: string, extra: Record<string, string> = {}) => ({
  PATH: `${dir}/bin:${Deno.env.get("PATH")}`,
  FAKE_GCLOUD_DIR: dir,
  FAKE_GCLOUD_IPS: "127.0.0.1;127.0.0.1",
  DENO_DIR: await denoDir(),
  ...extra,
});

Deno.test("tpu launch.sh: a 2-worker CPU job through a stand-in gcloud", async () => {
  const dir = await Deno.makeTempDir({ prefix: "deit3-tpu-launch-" });
  try {
    await fakeSlice(dir, 2);
    const data = await makeDataset(dir);
    // Each shard is read through `pipe:`, which notes which worker (by its home) opened it.
    await Deno.writeTextFile(
      `${dir}/read.sh`,
      `echo "$1 $HOME" >>${dir}/opened; exec cat ${dir}/train-$1.tar\n`,
    );
    const train = `pipe:sh ${dir}/read.sh {0..1}`;
    const cfg = {
      ...tinyConfig(dir, data, 2),
      "train-dataset-shards": train,
      "train-batch-size": 4,
      "valid-batch-size": 4,
      "eval-interval": 2,
    };
    await Deno.writeTextFile(`${dir}/cfg.json`, JSON.stringify(cfg));
    const port = freePort();
    const out = await new Deno.Command("bash", {
      args: [
        `${ROOT}/scripts/tpu/launch.sh`,
        "slice",
        "zone-a",
        `${dir}/cfg.json`,
        "--backend",
        "cpu",
      ],
      env: await env(dir, { COORDINATOR_PORT: String(port) }),
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    const logs = await Promise.all(
      [0, 1].map((i) => Deno.readTextFile(`${dir}/worker-${i}/train.log`)),
    );
    assertEquals(out.code, 0, `${text}\n${logs.join("\n----\n")}`);
    assert(text.includes(`launching 2 process(es); coordinator 127.0.0.1:${port}`), text);

    const calls = (await Deno.readTextFile(`${dir}/calls`)).trim().split("\n");
    assertEquals(calls.length, 3, calls.join("\n"));
    assert(
      calls[0].startsWith("compute tpus tpu-vm describe slice --zone zone-a --format="),
      calls[0],
    );
    for (const i of [0, 1]) {
      const call = calls.find((c) => c.includes(`--worker=${i} `))!;
      assert(call.startsWith("compute tpus tpu-vm ssh slice --zone zone-a --worker="), call);
      for (
        const flag of [
          "--backend pjrt",
          `--num-processes 2 --process-id ${i} --coordinator 127.0.0.1:${port}`,
          "--backend cpu",
          ".deno/bin",
        ]
      ) assert(call.includes(flag), `${flag} in ${call}`);
    }

    // Both trained 2 steps in one job; worker 1 wrote nothing.
    for (const [i, log] of logs.entries()) {
      assert(log.includes("2 processes x 1 device"), log);
      assert(log.includes(`this is process ${i}`), log);
    }
    assert(logs[1].includes("process 1 writes no files (process 0 does)"), logs[1]);
    assert(!logs[0].includes("writes no files"), logs[0]);
    const written = [...Deno.readDirSync(`${dir}/out`)].map((e) => e.name);
    assert(written.includes("tiny-state.msgpack"), written.join(" "));

    // The shard stream is split: in each epoch every shard is read by exactly one worker, so
    // the k-th shard each worker opened (one per epoch here: 2 shards, 2 workers) differ.
    const opened = (await Deno.readTextFile(`${dir}/opened`)).trim().split("\n");
    const byWorker = [0, 1].map((i) =>
      opened.filter((l) => l.endsWith(`/worker-${i}`)).map((l) => l.split(" ")[0])
    );
    assert(byWorker.every((l) => l.length >= 1), opened.join("\n"));
    for (let k = 0; k < Math.min(byWorker[0].length, byWorker[1].length); k++) {
      assert(byWorker[0][k] !== byWorker[1][k], `epoch ${k}: ${opened.join("\n")}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tpu setup.sh: deno from its release zip into ~/.deno, libtpu with pip --user, no npm -g", async () => {
  const dir = await Deno.makeTempDir({ prefix: "deit3-tpu-setup-" });
  try {
    await fakeSlice(dir, 0);
    const out = await new Deno.Command("bash", {
      args: [`${ROOT}/scripts/tpu/setup.sh`, "slice", "zone-a", "https://example.invalid/r.git"],
      env: await env(dir, { FAKE_GCLOUD_RUN: "0" }),
      stderr: "piped",
    }).output();
    assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
    const [call] = (await Deno.readTextFile(`${dir}/calls`)).trim().split("\n");
    assert(call.startsWith("compute tpus tpu-vm ssh slice --zone zone-a --worker=all --command "));
    // The remote command, as the worker's shell gets it.
    const command = await new Deno.Command("bash", {
      args: ["-c", 'eval "set -- $CALL"; printf %s "${@: -1}"'],
      env: { CALL: call },
      stdout: "piped",
    }).output();
    const remote = new TextDecoder().decode(command.stdout);
    const syntax = await new Deno.Command("bash", { args: ["-n", "-c", remote], stderr: "piped" })
      .output();
    assertEquals(syntax.code, 0, new TextDecoder().decode(syntax.stderr));
    for (
      const want of [
        "python3 -m pip install --user -q libtpu",
        "https://dl.deno.land/release/v2.9.6/deno-$(uname -m)-unknown-linux-gnu.zip",
        "python3 -m zipfile -e /tmp/deno.zip ~/.deno/bin",
        "export PATH=$HOME/.deno/bin:$PATH",
        "git clone https://example.invalid/r.git ~/deit3-deno",
      ]
    ) assert(remote.includes(want), `${want} in\n${remote}`);
    assert(!/npm|nodejs/.test(remote), remote);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/**
 * TensorBoard's own smoothing, for checking the dashboard's against it: the function of
 * TensorBoard's scalar cards ("classicSmoothing"), taken from the frontend bundle that the
 * `tensorboard` wheel ships (webfiles.zip, index.js) in the peer venv
 * (`bash ../shared/tools/peers.sh`), and run as it is.
 *
 * `deno run -A tests/report/tensorboard_smoothing.ts` rewrites
 * tests/fixtures/dashboard/tensorboard_smoothing.json (its answers on SMOOTHING_CASES), which
 * the test uses where no peer venv is installed.
 */

/** Inputs: a noisy curve, a short one, one with NaN/Infinity, a constant one; four weights. */
export const SMOOTHING_CASES = (() => {
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const noisy = Array.from({ length: 200 }, (_, i) => 2.3 * Math.exp(-i / 60) + 0.3 * rand());
  return [
    { ys: noisy, weights: [0, 0.6, 0.9, 0.999] },
    { ys: [5, 1, 3], weights: [0.5, 1] },
    { ys: [1, NaN, 2, Infinity, 4, -Infinity, 3], weights: [0.6] },
    { ys: [0.25, 0.25, 0.25], weights: [0.9] },
  ];
})();

type Smooth = (
  series: { id: string; points: { x: number; y: number }[] }[],
  weight: number,
) => Promise<{ id: string; points: { x: number; y: number }[] }[]>;

/** TensorBoard's function, or null (with the reason) where the peer venv is missing. */
export async function tensorboardSmoothing(): Promise<Smooth | string> {
  const home = Deno.env.get("HOME");
  const python = Deno.env.get("DEIT3_PEERS_PYTHON") ??
    (home ? `${home}/.cache/deit3-peers/bin/python` : "");
  let out;
  try {
    out = await new Deno.Command(python, {
      args: [
        "-c",
        "import sys, zipfile, os, tensorboard; z = zipfile.ZipFile(os.path.join(" +
        "os.path.dirname(tensorboard.__file__), 'webfiles.zip')); " +
        "sys.stdout.write(tensorboard.__version__ + '\\n' + z.read('index.js').decode())",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (e) {
    return `no peer venv python at ${python} (${
      (e as Error).message
    }; bash ../shared/tools/peers.sh)`;
  }
  if (!out.success) {
    return `the peer venv has no tensorboard: ${new TextDecoder().decode(out.stderr).trim()}`;
  }
  const text = new TextDecoder().decode(out.stdout);
  // The body of classicSmoothing, minified: its names differ between builds, its shape not.
  const m = text.match(
    /Number\.isFinite\((\w+)\)\|\|\(\1=0\),\1=Math\.max\(0,Math\.min\(\1,1\)\);let (\w+)=\[\];for\(let (\w+) of (\w+)\)\{[\s\S]{0,600}?\2\.push\(\{id:\3\.id,points:\w+\}\)\}return \2\}/,
  );
  if (!m) return `classicSmoothing not found in tensorboard ${text.split("\n")[0]}'s index.js`;
  const [body, weight, , , series] = m;
  return new Function(series, weight, `return (async () => {${body})();`) as Smooth;
}

/** TensorBoard's answers on SMOOTHING_CASES (non-finite values as strings, as JSON lacks them). */
export async function referenceAnswers(smooth: Smooth): Promise<(number | string)[][][]> {
  const out = [];
  for (const c of SMOOTHING_CASES) {
    const byWeight = [];
    for (const w of c.weights) {
      const [r] = await smooth([{ id: "s", points: c.ys.map((y, x) => ({ x, y })) }], w);
      byWeight.push(r.points.map((p) => (Number.isFinite(p.y) ? p.y : String(p.y))));
    }
    out.push(byWeight);
  }
  return out;
}

export const FIXTURE = new URL("../fixtures/dashboard/tensorboard_smoothing.json", import.meta.url);

if (import.meta.main) {
  const smooth = await tensorboardSmoothing();
  if (typeof smooth === "string") throw new Error(smooth);
  await Deno.writeTextFile(FIXTURE, JSON.stringify(await referenceAnswers(smooth)) + "\n");
  console.log(`wrote ${FIXTURE.pathname}`);
}

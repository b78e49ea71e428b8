/**
 * deno run -A scripts/gen/readme_tables.ts [--check]
 *
 * Writes the README's generated tables between their markers: the hyperparameters (from the
 * config schema, lib/config/schema.ts) and the original's released checkpoints with the exact
 * `eval` and `convert` commands, then formats it with deno fmt. `--check` exits 1 when the README
 * is out of date (the test suite runs the same check).
 */
import { configMarkdownTable } from "../../lib/config/help.ts";
import { timmModelFor } from "../../lib/checkpoint/timm_models.ts";

/** The original's released checkpoints (its README, "Pretrained Checkpoints"). */
export const RELEASED: [
  file: string,
  model: string,
  data: string,
  res: string,
  epochs: string,
  top1: string,
][] = [
  ["deit-t16-224-in1k-300ep-best.msgpack", "T/16", "in1k", "224", "300", "73.1%"],
  ["deit-s16-224-in1k-300ep-best.msgpack", "S/16", "in1k", "224", "300", "79.68%"],
  ["deit-b16-224-in1k-300ep-best.msgpack", "B/16", "in1k", "224", "300", "81.46%"],
  ["deit3-s16-224-in1k-400ep-best.msgpack", "S/16", "in1k", "224", "400", "80.7%"],
  ["deit3-s16-224-in1k-800ep-best.msgpack", "S/16", "in1k", "224", "800", "81.44%"],
  ["deit3-b16-pt-192-in1k-400ep-last.msgpack", "B/16", "in1k", "192", "400", "-"],
  [
    "deit3-b16-pt-192-in1k-400ep-ft-224-in1k-20ep-best.msgpack",
    "B/16",
    "in1k",
    "192->224",
    "400+20",
    "83.6%",
  ],
  ["deit3-b16-pt-192-in1k-800ep-last.msgpack", "B/16", "in1k", "192", "800", "-"],
  [
    "deit3-b16-pt-192-in1k-800ep-ft-224-in1k-20ep-best.msgpack",
    "B/16",
    "in1k",
    "192->224",
    "800+20",
    "83.91%",
  ],
  ["deit3-l16-pt-192-in1k-400ep-last.msgpack", "L/16", "in1k", "192", "400", "-"],
  [
    "deit3-l16-pt-192-in1k-400ep-ft-224-in1k-20ep-best.msgpack",
    "L/16",
    "in1k",
    "192->224",
    "400+20",
    "84.62%",
  ],
  ["deit3-h14-pt-154-in1k-400ep-last.msgpack", "H/14", "in1k", "154", "400", "-"],
  [
    "deit3-h14-pt-154-in1k-400ep-ft-224-in1k-20ep-best.msgpack",
    "H/14",
    "in1k",
    "154->224",
    "400+20",
    "85.12%",
  ],
  ["deit3-s16-pt-224-in21k-90ep-last.msgpack", "S/16", "in21k", "224", "90", "-"],
  [
    "deit3-s16-pt-224-in21k-90ep-ft-224-in1k-50ep-best.msgpack",
    "S/16",
    "in21k->in1k",
    "224",
    "90+50",
    "83.04%",
  ],
  ["deit3-s16-pt-224-in21k-240ep-last.msgpack", "S/16", "in21k", "224", "240", "-"],
  [
    "deit3-s16-pt-224-in21k-240ep-ft-224-in1k-50ep-best.msgpack",
    "S/16",
    "in21k->in1k",
    "224",
    "240+50",
    "83.39%",
  ],
  ["deit3-b16-pt-224-in21k-90ep-last.msgpack", "B/16", "in21k", "224", "90", "-"],
  [
    "deit3-b16-pt-224-in21k-90ep-ft-224-in1k-50ep-best.msgpack",
    "B/16",
    "in21k->in1k",
    "224",
    "90+50",
    "85.35%",
  ],
  ["deit3-b16-pt-224-in21k-240ep-last.msgpack", "B/16", "in21k", "224", "240", "-"],
  [
    "deit3-b16-pt-224-in21k-240ep-ft-224-in1k-50ep-best.msgpack",
    "B/16",
    "in21k->in1k",
    "224",
    "240+50",
    "85.68%",
  ],
  ["deit3-l16-pt-224-in21k-90ep-last.msgpack", "L/16", "in21k", "224", "90", "-"],
  [
    "deit3-l16-pt-224-in21k-90ep-ft-224-in1k-50ep-best.msgpack",
    "L/16",
    "in21k->in1k",
    "224",
    "90+50",
    "86.83%",
  ],
  ["deit3-h14-pt-126-in21k-90ep-last.msgpack", "H/14", "in21k", "126", "90", "-"],
  [
    "deit3-h14-pt-126-in21k-90ep-ft-224-in1k-50ep-best.msgpack",
    "H/14",
    "in21k->in1k",
    "126->224",
    "90+50",
    "86.78%",
  ],
];

const BASE = "https://huggingface.co/affjljoo3581/deit3-jax/resolve/main";

export function checkpointTable(): string {
  const lines = [
    "| checkpoint | model | data | resolution | epochs | top-1 (deit3-jax) | evaluate | convert to timm | timm model |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const [file, model, data, res, epochs, top1] of RELEASED) {
    const config = file.replace(/-(best|last)\.msgpack$/, "");
    const c = JSON.parse(
      Deno.readTextFileSync(new URL(`../../configs/${config}.json`, import.meta.url)),
    );
    const timm = timmModelFor({
      dim: c.dim,
      layers: c.layers,
      patchSize: c["patch-size"],
      imageSize: c["image-size"],
      labels: c.labels,
    }, !!c.layerscale)!;
    const create = `\`timm.create_model("${timm.name}"${
      timm.args.map((a) => `, ${a}`).join("")
    })\``;
    // An in21k pre-training checkpoint has a 21k-class head: nothing to evaluate on in1k.
    const evaluate = data === "in21k"
      ? "- (in21k head)"
      : `\`deno task eval ${file} --config configs/${config}.json\``;
    lines.push(
      `| [${file}](${BASE}/${file}?download=true) | ${model} | ${data} | ${res} | ${epochs} | ` +
        `${top1} | ${evaluate} | \`deno task convert ${file} --to pth --timm-model ${timm.name}\` | ` +
        `${create} |`,
    );
  }
  return lines.join("\n") + "\n";
}

const TABLES: Record<string, () => string> = {
  hyperparameters: configMarkdownTable,
  checkpoints: checkpointTable,
};

/** The README with every generated table replaced by its current text. */
export function updateReadme(readme: string): string {
  let out = readme;
  for (const [name, make] of Object.entries(TABLES)) {
    const { start, stop } = markers(out, name);
    out = out.slice(0, start) + "\n" + make() + "\n" + out.slice(stop);
  }
  return out;
}

/** Whether every generated table in `readme` says what the generator says (padding aside). */
export function readmeTablesCurrent(readme: string): boolean {
  return Object.entries(TABLES).every(([name, make]) => {
    const { start, stop } = markers(readme, name);
    return normalize(readme.slice(start, stop)) === normalize(make());
  });
}

function markers(readme: string, name: string): { start: number; stop: number } {
  const begin = `<!-- ${name}:begin (generated by scripts/gen/readme_tables.ts) -->\n`;
  const i = readme.indexOf(begin), j = readme.indexOf(`<!-- ${name}:end -->`);
  if (i < 0 || j < i) throw new Error(`README.md lacks the ${name} markers`);
  return { start: i + begin.length, stop: j };
}

/** A Markdown table without the padding that deno fmt adds. */
function normalize(table: string): string {
  return table.split("\n").map((l) => l.trim()).filter((l) => l).map((l) =>
    l.split(/(?<!\\)\|/).map((c) => c.trim().replace(/^-{3,}$/, "---")).join("|")
  ).join("\n");
}

if (import.meta.main) {
  const path = new URL("../../README.md", import.meta.url).pathname;
  const readme = await Deno.readTextFile(path);
  if (Deno.args.includes("--check")) {
    if (!readmeTablesCurrent(readme)) {
      console.error(
        "README.md tables are out of date: run deno run -A scripts/gen/readme_tables.ts",
      );
      Deno.exit(1);
    }
  } else if (!readmeTablesCurrent(readme)) {
    await Deno.writeTextFile(path, updateReadme(readme));
    await new Deno.Command(Deno.execPath(), { args: ["fmt", path] }).output();
    console.log("README.md tables updated");
  }
}

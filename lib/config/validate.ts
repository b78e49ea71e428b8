/** Checks across options: combinations the model, data pipeline or optimizer cannot run. */
import type { ConfigKey } from "./schema.ts";
import type { Value } from "./values.ts";

/** Where a key's value came from: the config file, a flag (as typed), or the schema default. */
export type Origin = { from: "file" } | { from: "flag"; flag: string } | { from: "default" };

/** A merged configuration before it is frozen, with the origin of each value. */
export interface Draft {
  values: Record<ConfigKey, Value>;
  origins: Record<ConfigKey, Origin>;
}

/** Problems with the combination of values, as phrases naming the keys and where each came from. */
export function checkCombinations({ values: v, origins }: Draft): string[] {
  const show = (key: ConfigKey) => describeKey(key, v[key], origins[key]);
  const problems: string[] = [];
  const int = (key: ConfigKey) => v[key] as number;

  if (int("dim") % int("heads") !== 0) {
    problems.push(`${show("dim")} must be divisible by ${show("heads")}`);
  }
  if (int("image-size") % int("patch-size") !== 0) {
    problems.push(`${show("image-size")} must be divisible by ${show("patch-size")}`);
  }
  if (int("train-batch-size") % int("grad-accum") !== 0) {
    problems.push(
      `${show("train-batch-size")} must be divisible by ${show("grad-accum")} ` +
        "(each optimizer step accumulates grad-accum equal micro-batches)",
    );
  }
  if (int("warmup-steps") > int("training-steps")) {
    problems.push(`${show("warmup-steps")} must be at most ${show("training-steps")}`);
  }
  if (v["random-crop"] === "src" && int("image-size") <= 4) {
    problems.push(
      `${show("random-crop")} reflect-pads 4 pixels, which needs ${show("image-size")} >= 5`,
    );
  }
  if (v["label-mapping"] !== null && v["pretrained-ckpt"] === null) {
    problems.push(
      `${show("label-mapping")} maps the head of a pretrained checkpoint, but ` +
        `${show("pretrained-ckpt")} is not set`,
    );
  }
  if (v["pjrt-plugin"] !== null && v["backend"] !== "pjrt" && v["backend"] !== "auto") {
    problems.push(`${show("pjrt-plugin")} is set, but ${show("backend")} does not use PJRT`);
  }
  return problems;
}

function describeKey(key: ConfigKey, value: Value, origin: Origin): string {
  const shown = typeof value === "string" ? `"${value}"` : String(value);
  switch (origin.from) {
    case "file":
      return `"${key}" (${shown})`;
    case "flag":
      return `"${key}" (${shown}, from ${origin.flag})`;
    case "default":
      return `"${key}" (${shown}, the default)`;
  }
}

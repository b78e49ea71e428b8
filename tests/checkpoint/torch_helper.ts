/** Runs scripts/checks/torch_checkpoint_check.py with Debian's python3-torch, when it is installed. */
const PYTHON = "/usr/bin/python3";
const SCRIPT = new URL("../../scripts/checks/torch_checkpoint_check.py", import.meta.url).pathname;

export const HAVE_TORCH = (() => {
  try {
    return new Deno.Command(PYTHON, {
      args: ["-c", "import torch"],
      stdout: "null",
      stderr: "null",
    })
      .outputSync().success;
  } catch {
    return false;
  }
})();

if (!HAVE_TORCH) {
  console.warn(
    "checkpoint tests: torch not found (/usr/bin/python3 -c 'import torch'); torch checks skipped",
  );
}

/** Runs a subcommand; throws with torch's stderr when it fails. */
export async function torchCheck(...args: string[]): Promise<string> {
  const out = await new Deno.Command(PYTHON, { args: [SCRIPT, ...args] }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`torch check ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return text;
}

/**
 * The peer venv's python (timm 1.x, torch) for the timm tests: `$DEIT3_PEERS_PYTHON`, else
 * `~/.cache/deit3-peers/bin/python` (made by the shared `peers.sh`), else none, and the tests
 * that need it skip with a message.
 */
const SCRIPT = new URL("../../scripts/checks/timm_check.py", import.meta.url).pathname;

function findPeerPython(): string | null {
  const home = Deno.env.get("HOME");
  for (
    const candidate of [
      Deno.env.get("DEIT3_PEERS_PYTHON"),
      home && `${home}/.cache/deit3-peers/bin/python`,
    ]
  ) {
    if (!candidate) continue;
    try {
      const ok = new Deno.Command(candidate, {
        args: ["-c", "import timm, torch"],
        stdout: "null",
        stderr: "null",
      }).outputSync().success;
      if (ok) return candidate;
    } catch {
      // not there
    }
  }
  return null;
}

export const PEER_PYTHON = findPeerPython();

export function warnNoPeer(what: string): void {
  if (!PEER_PYTHON) {
    console.warn(
      `${what}: skipped, no python with timm and torch (the peer venv: run ` +
        "../shared/tools/peers.sh, or set DEIT3_PEERS_PYTHON)",
    );
  }
}

/** Runs scripts/checks/timm_check.py; throws with its stderr when it fails. */
export async function timmCheck(...args: string[]): Promise<string> {
  const out = await new Deno.Command(PEER_PYTHON!, { args: [SCRIPT, ...args] }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(
      `timm_check.py ${args[0]} failed: ${text}${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return text;
}

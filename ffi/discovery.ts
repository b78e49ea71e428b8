/**
 * Finding a PJRT plugin: `--pjrt-plugin PATH`, then `PJRT_PLUGIN_PATH`, then `TPU_LIBRARY_PATH`
 * (JAX's libtpu override), then libtpu and the jax CUDA/ROCm plugins in Python site-packages,
 * then standard library locations. An explicit path that does not exist is an error naming it
 * (never silently skipped); finding nothing is an error listing everything searched.
 */

export type PluginSource = "--pjrt-plugin" | "PJRT_PLUGIN_PATH" | "TPU_LIBRARY_PATH" | "search";

export interface DiscoveredPlugin {
  path: string;
  source: PluginSource;
}

export interface DiscoveryOptions {
  /** The `--pjrt-plugin PATH` flag, if given. */
  pluginPath?: string;
  /** Environment lookup; default `Deno.env.get`. */
  env?: (name: string) => string | undefined;
  /**
   * Prefixes whose `lib/python3.*` site-packages are searched. Default: `$VIRTUAL_ENV`,
   * `$CONDA_PREFIX`, `~/.local`, `/usr/local`, `/usr`, `/opt/conda`, `/opt/{name}/.venv`,
   * `/opt/{name}/venv`.
   */
  pythonPrefixes?: string[];
  /** Library files tried last. Default: libtpu.so in /usr/local/lib, /usr/lib, /lib. */
  standardPaths?: string[];
}

export class PjrtPluginNotFoundError extends Error {
  constructor(message: string, readonly searched: string[]) {
    super(message);
    this.name = "PjrtPluginNotFoundError";
  }
}

/** Finds the plugin to load, or throws `PjrtPluginNotFoundError` saying what was searched. */
export function findPjrtPlugin(options: DiscoveryOptions = {}): DiscoveredPlugin {
  const env = options.env ?? ((name: string) => Deno.env.get(name));
  if (options.pluginPath !== undefined) {
    return { path: checkExplicit(options.pluginPath, "--pjrt-plugin"), source: "--pjrt-plugin" };
  }
  for (const variable of ["PJRT_PLUGIN_PATH", "TPU_LIBRARY_PATH"] as const) {
    const value = env(variable);
    if (value) return { path: checkExplicit(value, variable), source: variable };
  }
  const searched: string[] = [];
  for (const candidate of candidatePaths(options, env, searched)) {
    if (isFile(candidate)) return { path: candidate, source: "search" };
  }
  throw new PjrtPluginNotFoundError(
    "No PJRT plugin found. --pjrt-plugin was not given, PJRT_PLUGIN_PATH and TPU_LIBRARY_PATH " +
      `are not set, and none of these exist:\n  ${searched.join("\n  ")}\n` +
      "Pass --pjrt-plugin PATH or set PJRT_PLUGIN_PATH to a PJRT plugin such as libtpu.so " +
      "(pip install libtpu) or xla_cuda_plugin.so (pip install jax-cuda13-pjrt).",
    searched,
  );
}

/** Candidate plugin files in search order; `searched` receives every path or pattern tried. */
function candidatePaths(
  options: DiscoveryOptions,
  env: (name: string) => string | undefined,
  searched: string[],
): string[] {
  const out: string[] = [];
  for (const prefix of options.pythonPrefixes ?? defaultPythonPrefixes(env)) {
    const siteDirs = sitePackagesUnder(prefix);
    if (siteDirs.length === 0) {
      searched.push(`${prefix}/lib/python3*/{site,dist}-packages (no such directory)`);
      continue;
    }
    for (const site of siteDirs) {
      const libtpu = `${site}/libtpu/libtpu.so`;
      searched.push(libtpu);
      out.push(libtpu);
      const jaxPlugins = jaxPluginFiles(site);
      searched.push(`${site}/jax_plugins/*/xla_*_plugin.so` + (jaxPlugins.length ? "" : " (none)"));
      out.push(...jaxPlugins);
    }
  }
  for (const path of options.standardPaths ?? DEFAULT_STANDARD_PATHS) {
    searched.push(path);
    out.push(path);
  }
  return out;
}

const DEFAULT_STANDARD_PATHS = ["/usr/local/lib/libtpu.so", "/usr/lib/libtpu.so", "/lib/libtpu.so"];

function defaultPythonPrefixes(env: (name: string) => string | undefined): string[] {
  const prefixes: string[] = [];
  for (const v of ["VIRTUAL_ENV", "CONDA_PREFIX"]) {
    const value = env(v);
    if (value) prefixes.push(value);
  }
  const home = env("HOME");
  if (home) prefixes.push(`${home}/.local`);
  prefixes.push("/usr/local", "/usr", "/opt/conda");
  for (const name of listDir("/opt")) {
    for (const venv of [".venv", "venv"]) {
      if (isDir(`/opt/${name}/${venv}`)) prefixes.push(`/opt/${name}/${venv}`);
    }
  }
  return [...new Set(prefixes)];
}

/** `PREFIX/lib/python3.X/{site,dist}-packages` directories, newest Python first. */
function sitePackagesUnder(prefix: string): string[] {
  const pythons = listDir(`${prefix}/lib`).filter((n) => /^python3(\.\d+)?$/.test(n))
    .sort((a, b) => pythonMinor(b) - pythonMinor(a));
  const out: string[] = [];
  for (const py of pythons) {
    for (const kind of ["site-packages", "dist-packages"]) {
      const dir = `${prefix}/lib/${py}/${kind}`;
      if (isDir(dir)) out.push(dir);
    }
  }
  return out;
}

/** `jax_plugins/<name>/xla_<platform>_plugin.so` files (jax-cuda12/13-pjrt, jax-rocm-pjrt). */
function jaxPluginFiles(site: string): string[] {
  const out: string[] = [];
  for (const dir of listDir(`${site}/jax_plugins`).sort().reverse()) {
    for (const file of listDir(`${site}/jax_plugins/${dir}`)) {
      if (/^xla_\w+_plugin\.so$/.test(file)) out.push(`${site}/jax_plugins/${dir}/${file}`);
    }
  }
  return out;
}

function checkExplicit(path: string, from: string): string {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch (e) {
    const reason = e instanceof Deno.errors.NotFound ? "no such file" : (e as Error).message;
    throw new PjrtPluginNotFoundError(
      `PJRT plugin ${path} (from ${from}) cannot be used: ${reason}`,
      [path],
    );
  }
  if (!info.isFile) {
    throw new PjrtPluginNotFoundError(
      `PJRT plugin ${path} (from ${from}) is not a file; give the path of the .so itself`,
      [path],
    );
  }
  return path;
}

function pythonMinor(name: string): number {
  return Number(name.split(".")[1] ?? 0);
}

function listDir(path: string): string[] {
  try {
    return [...Deno.readDirSync(path)].map((e) => e.name);
  } catch {
    return [];
  }
}

function isDir(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * The CUDA libraries of NVIDIA's wheels (`nvidia/<package>/lib` next to the plugin's `jax_plugins`
 * folder, e.g. nvidia/cublas/lib/libcublas.so.12, or nvidia/cu13/lib for CUDA 13) in the order
 * jax loads them before its CUDA plugin (`_load_nvidia_libraries` in jax_plugins/xla_cuda*):
 * under Python they are in the process already; from Deno the plugin only finds what its own
 * search path reaches. Empty for a plugin outside a site-packages `jax_plugins` folder.
 */
export function nvidiaLibraries(pluginPath: string): string[] {
  const at = pluginPath.lastIndexOf("/jax_plugins/");
  if (at < 0) return [];
  const nvidia = `${pluginPath.slice(0, at)}/nvidia`;
  const files = listDir(nvidia).sort().flatMap((pkg) =>
    listDir(`${nvidia}/${pkg}/lib`).map((f) => `${nvidia}/${pkg}/lib/${f}`)
  );
  const out: string[] = [];
  for (const name of NVIDIA_LOAD_ORDER) {
    // The soname itself (libcublas.so.12), not the unversioned or fully versioned names.
    const re = new RegExp(`/${name}\\.so\\.\\d+$`);
    out.push(...files.filter((f) => re.test(f)));
  }
  return out;
}

/** Dependencies before their users: cuBLAS needs cuBLASLt, cuSOLVER cuBLAS and cuSPARSE, ... */
const NVIDIA_LOAD_ORDER = [
  "libcudart",
  "libnvrtc",
  "libnvJitLink",
  "libcublasLt",
  "libcublas",
  "libnccl",
  "libcupti",
  "libcusparse",
  "libcusolver",
  "libcufft",
  "libnvshmem_host",
  "libcudnn",
];

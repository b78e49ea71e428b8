/**
 * Adapter and device acquisition. The device is created with the adapter's own limits (the
 * defaults are lower: 8 storage buffers per stage, 128 MiB bindings), and kernels are tuned by
 * what the adapter is: a CPU rasterizer (llvmpipe, SwiftShader, WARP) or a GPU.
 */
import { chunkPolicy } from "./bindings.ts";
import type { Tuning } from "./codegen.ts";

/** The adapter limits the planner and code generator use. */
export interface AdapterLimits {
  maxStorageBuffersPerShaderStage: number;
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeWorkgroupsPerDimension: number;
  minStorageBufferOffsetAlignment: number;
}

/**
 * What compiling needs to know about an adapter, without the device: enough to trace, plan and
 * allocate a program for an adapter that is not on this machine (`adapterProfile`).
 */
export interface AdapterProfile {
  /** True for software adapters that run shaders on the CPU. */
  cpuAdapter: boolean;
  limits: AdapterLimits;
  tuning: Tuning;
  /**
   * Device memory in bytes that one program's buffers may take; undefined when unknown (WebGPU
   * does not report it: it comes from `DeviceOptions.memoryBytes`, the adapter's name, e.g.
   * "H100 80GB", or for CPU adapters the host's memory).
   */
  memoryBytes?: number;
}

export interface GpuContext extends AdapterProfile {
  device: GPUDevice;
  adapterInfo: GPUAdapterInfo;
}

export interface DeviceOptions {
  powerPreference?: GPUPowerPreference;
  /** Overrides the dot_general strategy chosen from the adapter (tests run both). */
  matmul?: Tuning["matmul"];
  /** Caps the tiled dot_general's tile edge (small tiles compile fast on llvmpipe). */
  maxTile?: number;
  /** Splits bindings above this many bytes (default: the adapter limit); tests use less. */
  maxBindingBytes?: number;
  /** Map/reduction kernel shape overrides (tests run the GPU shapes on llvmpipe). */
  workgroupSize?: number;
  cooperativeBelow?: number;
  /** Device memory in bytes (WebGPU does not report it); see `AdapterProfile.memoryBytes`. */
  memoryBytes?: number;
}

export async function requestContext(opts: DeviceOptions = {}): Promise<GpuContext> {
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!gpu) {
    throw new Error(
      "webgpu: navigator.gpu is not available in this runtime (Deno exposes it; run with -A). Use --backend cpu.",
    );
  }
  const adapter = await gpu.requestAdapter({
    powerPreference: opts.powerPreference ?? "high-performance",
  });
  if (!adapter) {
    throw new Error(
      "webgpu: no GPU adapter found (navigator.gpu.requestAdapter() returned null). Install a Vulkan/Metal " +
        "driver (on Linux without a GPU, Mesa's llvmpipe: apt-get install mesa-vulkan-drivers) or use --backend cpu.",
    );
  }
  const a = adapter.limits;
  const wanted = {
    maxStorageBuffersPerShaderStage: a.maxStorageBuffersPerShaderStage,
    maxStorageBufferBindingSize: a.maxStorageBufferBindingSize,
    maxBufferSize: a.maxBufferSize,
    maxComputeWorkgroupStorageSize: a.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: a.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: a.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupSizeY: a.maxComputeWorkgroupSizeY,
  };
  // Timestamps let `profile` time kernels on the device itself.
  const requiredFeatures: GPUFeatureName[] = adapter.features.has("timestamp-query")
    ? ["timestamp-query"]
    : [];
  const device = await adapter.requestDevice({ requiredLimits: wanted, requiredFeatures });
  const info = adapter.info;
  const desc = `${info.description} ${info.vendor} ${info.device}`;
  const cpuAdapter = info.isFallbackAdapter ||
    /llvmpipe|lavapipe|swiftshader|warp|software/i.test(desc);
  const profile = adapterProfile(device.limits, cpuAdapter, {
    ...opts,
    memoryBytes: opts.memoryBytes ?? memoryFromName(desc) ??
      (cpuAdapter ? hostMemory() : undefined),
  });
  return { device, adapterInfo: info, ...profile };
}

/** Limits, tuning and memory of an adapter from its limits (real or a stated profile). */
export function adapterProfile(
  l: AdapterLimits,
  cpuAdapter: boolean,
  opts: DeviceOptions = {},
): AdapterProfile {
  const limits: AdapterLimits = {
    maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
    maxBufferSize: l.maxBufferSize,
    maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
    maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
    minStorageBufferOffsetAlignment: l.minStorageBufferOffsetAlignment,
  };
  const tuning: Tuning = {
    workgroupSize: opts.workgroupSize ?? (cpuAdapter ? 64 : 256),
    matmul: opts.matmul ?? (cpuAdapter ? "register" : "tiled"),
    cooperativeBelow: opts.cooperativeBelow ?? (cpuAdapter ? 64 : 8192),
    maxWorkgroupStorage: limits.maxComputeWorkgroupStorageSize,
    maxTile: opts.maxTile,
    chunks: chunkPolicy(
      opts.maxBindingBytes ?? limits.maxStorageBufferBindingSize,
      limits.minStorageBufferOffsetAlignment,
    ),
  };
  return { cpuAdapter, limits, tuning, memoryBytes: opts.memoryBytes };
}

/** The host's memory (CPU adapters allocate there); undefined without --allow-sys. */
function hostMemory(): number | undefined {
  try {
    return Deno.systemMemoryInfo().total;
  } catch {
    return undefined;
  }
}

/** "NVIDIA H100 80GB HBM3", "A100-SXM4-40GB": the memory a GPU's name states, else undefined. */
export function memoryFromName(name: string): number | undefined {
  const m = /(\d+)\s?GB\b/i.exec(name);
  return m ? Number(m[1]) * 1e9 : undefined;
}

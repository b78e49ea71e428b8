/**
 * Adapter and device acquisition. The device is created with the adapter's own limits (the
 * defaults are lower: 8 storage buffers per stage, 128 MiB bindings), and kernels are tuned by
 * what the adapter is: a CPU rasterizer (llvmpipe, SwiftShader, WARP) or a GPU.
 */
import { chunkPolicy } from "./bindings.ts";
import type { Tuning } from "./codegen.ts";

export interface GpuContext {
  device: GPUDevice;
  adapterInfo: GPUAdapterInfo;
  /** True for software adapters that run shaders on the CPU. */
  cpuAdapter: boolean;
  limits: {
    maxStorageBuffersPerShaderStage: number;
    maxStorageBufferBindingSize: number;
    maxBufferSize: number;
    maxComputeWorkgroupStorageSize: number;
    maxComputeWorkgroupsPerDimension: number;
  };
  tuning: Tuning;
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
  const desc = `${info.description} ${info.vendor} ${info.device}`.toLowerCase();
  const cpuAdapter = info.isFallbackAdapter ||
    /llvmpipe|lavapipe|swiftshader|warp|software/.test(desc);
  const limits = {
    maxStorageBuffersPerShaderStage: device.limits.maxStorageBuffersPerShaderStage,
    maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize,
    maxBufferSize: device.limits.maxBufferSize,
    maxComputeWorkgroupStorageSize: device.limits.maxComputeWorkgroupStorageSize,
    maxComputeWorkgroupsPerDimension: device.limits.maxComputeWorkgroupsPerDimension,
  };
  const tuning: Tuning = {
    workgroupSize: opts.workgroupSize ?? (cpuAdapter ? 64 : 256),
    matmul: opts.matmul ?? (cpuAdapter ? "register" : "tiled"),
    cooperativeBelow: opts.cooperativeBelow ?? (cpuAdapter ? 64 : 8192),
    maxWorkgroupStorage: limits.maxComputeWorkgroupStorageSize,
    maxTile: opts.maxTile,
    chunks: chunkPolicy(
      opts.maxBindingBytes ?? limits.maxStorageBufferBindingSize,
      device.limits.minStorageBufferOffsetAlignment,
    ),
  };
  return { device, adapterInfo: info, cpuAdapter, limits, tuning };
}

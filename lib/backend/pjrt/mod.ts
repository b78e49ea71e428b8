/** The PJRT backend: StableHLO programs compiled and run by a PJRT plugin (TPU, NVIDIA GPU). */
export { PjrtBackend, type PjrtBackendOptions, type PjrtCompileOptions } from "./backend.ts";
export { PjrtArray } from "./array.ts";
export { splitAxis0 } from "../replicas.ts";
export { pjrtKeyValueStore, type StringKeyValueStore } from "./kv_bridge.ts";
export { dtypeOfElementType, pjrtElementType } from "./dtype.ts";

/** PJRT C API bindings through Deno FFI. See client.ts for the call sequence. */
export { cudaClientOptions, PjrtClient } from "./client.ts";
export type { ClientOptionValue, OpenOptions, PjrtDevice } from "./client.ts";
export { PjrtBuffer } from "./buffer.ts";
export type { KeyValueStore } from "./kv_callbacks.ts";
export { PjrtExecutable } from "./executable.ts";
export type { ExecuteOptions } from "./executable.ts";
export { PjrtError, PjrtPluginError } from "./errors.ts";
export { findPjrtPlugin, PjrtPluginNotFoundError } from "./discovery.ts";
export type { DiscoveredPlugin, DiscoveryOptions, PluginSource } from "./discovery.ts";
export { encodeCompileOptions } from "./proto.ts";
export type { CompileOptions } from "./proto.ts";
export { PjrtPlugin } from "./plugin.ts";
export { BufferType, PJRT_HEADER_VERSION } from "./pjrt_api.ts";
export { elementByteSize, elementTypeName } from "./element_type.ts";
export type { PjrtHostBuffer } from "./element_type.ts";

/** Checkpoint formats: Flax msgpack, PyTorch .pth, safetensors, training state, conversions. */
export * from "./errors.ts";
export * from "./tree.ts";
export * from "./atomic.ts";
export {
  encodeFlaxMsgpack,
  MAX_CHUNK_BYTES,
  NUMPY_DTYPE,
  readFlaxMsgpack,
  readFlaxMsgpackFile,
  writeFlaxMsgpack,
  writeFlaxMsgpackFile,
} from "./flax_msgpack.ts";

/** Checkpoint formats: Flax msgpack, PyTorch .pth, safetensors, training state, conversions. */
export * from "./errors.ts";
export * from "./tree.ts";
export { atomicWrite, atomicWriteFile } from "./atomic.ts";
export {
  encodeFlaxMsgpack,
  MAX_CHUNK_BYTES,
  NUMPY_DTYPE,
  readFlaxMsgpack,
  readFlaxMsgpackFile,
  writeFlaxMsgpack,
  writeFlaxMsgpackFile,
} from "./flax_msgpack.ts";
export {
  encodePth,
  readPth,
  readPthFile,
  type StateDict,
  stateDictOf,
  writePth,
  writePthFile,
} from "./pth.ts";
export {
  encodeSafetensors,
  readSafetensors,
  readSafetensorsFile,
  type Safetensors,
  writeSafetensors,
  writeSafetensorsFile,
} from "./safetensors.ts";
export { flaxToTimm, HEADS_BY_DIM, timmToFlax } from "./timm.ts";
export {
  loadTrainingState,
  saveTrainingState,
  TRAIN_STATE_FORMAT,
  type TrainingState,
} from "./train_state.ts";
export {
  fitPretrained,
  keysCubic,
  type LabelMapping,
  loadPretrainedFile,
  matchTree,
  parseLabelMapping,
  resizeBicubic,
} from "./finetune.ts";
export { convertCheckpoint, type ConvertOptions, type Format } from "./convert.ts";
export { isGsUrl } from "../gcs/url.ts";
export {
  readInputBytes,
  useGcsEndpoint,
  withLocalInput,
  writeOutput,
  writeOutputBytes,
} from "./storage.ts";

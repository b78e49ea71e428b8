/** StableHLO emission: graph -> MLIR text for XLA (PJRT plugins and other XLA tools). */
export { type EmitOptions, emitStableHlo, replicasOf } from "./emit.ts";
export { type Alias, autoAliases, checkAliases, pathAliases } from "./aliasing.ts";
export { type ExportedProgram, type ExportOptions, exportTrainStep, paramSpecs } from "./export.ts";
export { planRematBarriers, type RematPlan } from "./remat.ts";
export { denseAttr, elementType, tensorType } from "./types.ts";

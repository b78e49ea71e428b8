/** StableHLO emission: graph -> MLIR text for XLA (PJRT plugins and other XLA tools). */
export { type EmitOptions, emitStableHlo } from "./emit.ts";
export { replicasOf } from "../replicas.ts";
export { type Alias, autoAliases, checkAliases, pathAliases } from "./aliasing.ts";
export { planRematBarriers, type RematPlan } from "./remat.ts";
export { denseAttr, elementType, tensorType } from "./types.ts";

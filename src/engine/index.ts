export type {
  Activation, AdamWParams, AttentionParams, Backend, DType, FloatArray, MatmulParams, RopeParams, Storage,
} from './backend';
export { CpuBackend, CpuStorage, readSync } from './cpu/backend';
export { setSimdEnabled, simdActive } from './cpu/matmul';
export {
  Tensor, assertLive, backward, beginScope, endScope, freeStorage, fromArray, full, isGradEnabled, keep,
  liveTensorCount, noGrad, numel, ones, rand, randn, record, setGradEnabled, shapeStr, tidy, zeros,
} from './tensor';
export type { BackwardFn, BackwardOptions, CreateOptions, Scope } from './tensor';
export { trackStorages } from './memory';
export type { StorageTracker, TrackOptions } from './memory';
export * as ops from './ops';
export { Rng, normalArray } from './random';
export { AdamW, clipGradNorm, clipScale, globalGradNorm, lrAt } from './optim';
export type { AdamWOptions, AdamWState, AdamWStepOptions, NamedParam, Schedule, ScheduleKind } from './optim';

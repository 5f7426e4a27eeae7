export type {
  Activation, AdamWParams, AttentionParams, Backend, DType, FloatArray, MatmulParams, RopeParams, Storage,
} from './backend';
export { CpuBackend, CpuStorage, readSync } from './cpu/backend';
export { setSimdEnabled, simdActive } from './cpu/matmul';
export {
  Tensor, backward, fromArray, full, isGradEnabled, noGrad, numel, ones, rand, randn, record, setGradEnabled,
  shapeStr, zeros,
} from './tensor';
export type { BackwardFn, BackwardOptions, CreateOptions } from './tensor';
export * as ops from './ops';
export { Rng, normalArray } from './random';
export { AdamW, clipGradNorm, clipScale, globalGradNorm, lrAt } from './optim';
export type { AdamWOptions, AdamWState, AdamWStepOptions, NamedParam, Schedule, ScheduleKind } from './optim';

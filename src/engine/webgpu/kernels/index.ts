/** Every WGSL kernel of the WebGPU backend, by family (see ../README.md for each op's pieces). */
export { defineKernel, KernelArgumentError, ro, rw, variants, type Kernel } from './define';
export { WG1 } from './common';
export * from './matmul';
export * from './elementwise';
export * from './reduce';
export * from './embedding';
export * from './norm';
export * from './attention';
export * from './loss';
export * from './optim';

/**
 * Optimizer family: the AdamW update, in place on param and moments. Reference: CpuBackend.adamw; tests:
 * the `adamw` cases of ../suite.ts.
 */
import { perElement } from './common';
import { defineKernel, ro, rw } from './define';

export const adamwKernel = defineKernel({
  name: 'adamw',
  bindings: { G: ro(), P: rw(), M: rw(), Vv: rw() },
  uniforms: {
    n: 'u32',
    lr: 'f32',
    beta1: 'f32',
    beta2: 'f32',
    eps: 'f32',
    wd: 'f32',
    bc1: 'f32',
    bc2: 'f32',
    gradScale: 'f32',
  },
  body: perElement(`let g = G[i] * u.gradScale;
  let m = u.beta1 * M[i] + (1.0 - u.beta1) * g;
  let v = u.beta2 * Vv[i] + (1.0 - u.beta2) * g * g;
  M[i] = m; Vv[i] = v;
  // Same operation order as the CPU reference: decay first, then the Adam step.
  P[i] = P[i] * (1.0 - u.lr * u.wd) - (u.lr * (m / u.bc1)) / (sqrt(v / u.bc2) + u.eps);`),
});

/**
 * Elementwise family: binary ops, scale, axpy, activations (+ backward), fused bias(+activation), column
 * slices. References: CpuBackend's methods of the same names (src/engine/cpu/backend.ts); tests: the
 * matching cases of ../suite.ts.
 */
import type { Activation } from '../../backend';
import { actCode, actFns, perElement } from './common';
import { defineKernel, ro, rw, variants } from './define';

export type BinaryOp = 'add' | 'sub' | 'mul';
const binExpr: Record<BinaryOp, string> = { add: 'x + y', sub: 'x - y', mul: 'x * y' };

export const binaryKernel = variants((op: BinaryOp) =>
  defineKernel({
    name: op,
    bindings: { A: ro(), B: ro(), O: rw() },
    uniforms: { n: 'u32' },
    body: perElement(`let x = A[i]; let y = B[i];\n  O[i] = ${binExpr[op]};`),
  }),
);

export const scaleKernel = defineKernel({
  name: 'scale',
  bindings: { A: ro(), O: rw() },
  uniforms: { n: 'u32', s: 'f32' },
  body: perElement('O[i] = A[i] * u.s;'),
});

export const axpyKernel = defineKernel({
  name: 'axpy',
  bindings: { S: ro(), D: rw() },
  uniforms: { n: 'u32', alpha: 'f32' },
  body: perElement('D[i] = fma(u.alpha, S[i], D[i]);'),
});

export const activationKernel = variants((kind: Activation) =>
  defineKernel({
    name: `activation ${kind}`,
    bindings: { X: ro(), O: rw() },
    uniforms: { n: 'u32' },
    body: `const ACT: u32 = ${actCode[kind]}u;\n${actFns}\n${perElement('O[i] = act(X[i]);')}`,
  }),
);

export const activationBackwardKernel = variants((kind: Activation) =>
  defineKernel({
    name: `activationBackward ${kind}`,
    bindings: { DY: ro(), X: ro(), O: rw() },
    uniforms: { n: 'u32' },
    body: `const ACT: u32 = ${actCode[kind]}u;\n${actFns}\n${perElement('O[i] = DY[i] * actGrad(X[i]);')}`,
  }),
);

/** y = x + bias[c] (bias broadcast over rows). */
export const addBiasKernel = defineKernel({
  name: 'addBias',
  bindings: { X: ro(), Bias: ro(), O: rw() },
  uniforms: { n: 'u32', cols: 'u32' },
  body: perElement('O[i] = X[i] + Bias[i % u.cols];'),
});

/** out[r, c] = x[r, colOff + c] (add=false) or dst[r, colOff + c] += src[r, c] (add=true). */
export const colsKernel = variants((add: boolean) =>
  defineKernel({
    name: add ? 'addIntoCols' : 'sliceCols',
    bindings: { S: ro(), D: rw() },
    uniforms: { n: 'u32', cols: 'u32', colOff: 'u32', width: 'u32' },
    body: perElement(`let r = i / u.width; let c = i % u.width;
  ${add ? 'D[r * u.cols + u.colOff + c] += S[i];' : 'D[i] = S[r * u.cols + u.colOff + c];'}`),
  }),
);

/**
 * f32 -> f16 storage: word i of O holds elements 2i (low half) and 2i+1 (high half), converted by
 * `pack2x16float` (core WGSL, so f16 storage needs no device feature); an odd tail pads with zero.
 */
export const packF16Kernel = defineKernel({
  name: 'toF16',
  bindings: { X: ro(), O: rw('u32') },
  uniforms: { n: 'u32', len: 'u32' },
  body: perElement(`let j = 2u * i;
  var hi = 0.0;
  if (j + 1u < u.len) { hi = X[j + 1u]; }
  O[i] = pack2x16float(vec2<f32>(X[j], hi));`),
});

/** y = act(gate) * up: the gated MLP's product in one pass (the composition rounds act(gate) to f32 first,
 *  as this does, so both give the same numbers). */
export const gatedActivationKernel = variants((kind: Activation) =>
  defineKernel({
    name: `gatedActivation ${kind}`,
    bindings: { G: ro(), Up: ro(), O: rw() },
    uniforms: { n: 'u32' },
    body: `const ACT: u32 = ${actCode[kind]}u;\n${actFns}\n${perElement('O[i] = act(G[i]) * Up[i];')}`,
  }),
);

/** dgate = (dy * up) * act'(gate), dup = dy * act(gate), in the composition's operation order. */
export const gatedActivationBackwardKernel = variants((kind: Activation) =>
  defineKernel({
    name: `gatedActivationBackward ${kind}`,
    bindings: { DY: ro(), G: ro(), Up: ro(), DG: rw(), DU: rw() },
    uniforms: { n: 'u32' },
    body: `const ACT: u32 = ${actCode[kind]}u;\n${actFns}\n${perElement(`let dy = DY[i]; let g = G[i];
  DG[i] = (dy * Up[i]) * actGrad(g);
  DU[i] = dy * act(g);`)}`,
  }),
);

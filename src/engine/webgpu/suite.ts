/**
 * Kernel suite: every WebGPU op against the CPU reference (CpuBackend f32, which computes in doubles and
 * rounds only on store) on fresh seeded random inputs, several shapes each, including sizes that are not
 * multiples of any tile or workgroup.
 *
 * Error metric (per output tensor), both computed against the CPU result b:
 * - `normRel` = ||a - b||_2 / ||b||_2 (norm-wise relative error). This is the pass criterion: normRel < tol
 *   (default 1e-4). A single wrong element among N moves it by ~1/sqrt(N), far above 1e-4 for any tensor
 *   we test, so localized indexing bugs still fail.
 * - `maxRel` = max_i |a_i - b_i| / max(|b_i|, 1e-3 * max_j |b_j|) (elementwise, floored at 1e-3 of the
 *   tensor's largest magnitude). Reported, and guarded at `elemTol` (default 1e-2): f32 accumulation error
 *   of a correct kernel reaches ~1e-4 of this measure on elements that nearly cancel (seen: K=90 matmul
 *   8e-5, GELU-tanh derivative near its zero 1.4e-3, attention backward 5e-4), so 1e-4 elementwise would
 *   fail correct f32 kernels against a double-precision reference.
 */
import type { Backend, Storage } from '../backend';
import { CpuBackend } from '../cpu/backend';
import { Rng } from '../random';
import { halfToFloat, floatToHalf } from '../../model/safetensors';
import { DeviceLostError, GpuLimitError, createWebGpuBackend, type WebGpuBackend, type WebGpuInfo } from './backend';
import { chooseBackend } from './select';

export interface CaseResult {
  kernel: string;
  shape: string;
  ok: boolean;
  maxRel: number;
  normRel: number;
  /** Which output had the largest error. */
  worst?: string;
  error?: string;
  ms: number;
}

export interface SuiteResult {
  backend: string;
  info: WebGpuBackend['info'];
  tol: number;
  elemTol: number;
  cases: CaseResult[];
  passed: number;
  failed: number;
  ms: number;
}

type Inputs = Record<string, Float32Array>;
type Handles = Record<string, Storage>;

interface Case {
  kernel: string;
  shape: string;
  inputs: Inputs;
  /** Runs the op on a backend; returns the tensors to compare (including ones mutated in place). */
  run: (be: Backend, x: Handles) => Handles;
  tol?: number;
  /** Elementwise guard for this case (default: the suite's `elemTol`). */
  elemTol?: number;
  /** Outputs that are exactly zero in exact arithmetic (both backends hold rounding noise, so a relative
   *  error is meaningless): checked as max |gpu| < 1e-5 instead. */
  zeroOutputs?: string[];
}

export function relErrors(gpu: ArrayLike<number>, cpu: ArrayLike<number>): { maxRel: number; normRel: number } {
  if (gpu.length !== cpu.length) return { maxRel: Infinity, normRel: Infinity };
  let maxAbs = 0;
  for (let i = 0; i < cpu.length; i++) maxAbs = Math.max(maxAbs, Math.abs(cpu[i]!));
  const floor = Math.max(1e-3 * maxAbs, 1e-30);
  let maxRel = 0;
  let num = 0;
  let den = 0;
  for (let i = 0; i < cpu.length; i++) {
    const d = Math.abs(gpu[i]! - cpu[i]!);
    const r = d / Math.max(Math.abs(cpu[i]!), floor);
    if (!(r <= maxRel)) maxRel = Number.isNaN(r) ? Infinity : Math.max(maxRel, r);
    num += d * d;
    den += cpu[i]! * cpu[i]!;
  }
  const normRel = den > 0 ? Math.sqrt(num / den) : Math.sqrt(num);
  return { maxRel, normRel: Number.isNaN(normRel) ? Infinity : normRel };
}

function rand(rng: Rng, n: number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.uniform(lo, hi);
  return a;
}

function ints(rng: Rng, n: number, hi: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.int(hi);
  return a;
}

/** Host rounding to f16 and back (round to nearest even), the reference for the f16 storage path. */
function roundF16(a: Float32Array): Float32Array {
  return Float32Array.from(a, (v) => halfToFloat(floatToHalf(v)));
}

function buildCases(rng: Rng, info: WebGpuInfo): Case[] {
  const cases: Case[] = [];
  const add = (c: Case) => cases.push(c);

  // ---- matmul: [batch, m, n, k, transA, transB, aBatched, bBatched]
  const mm: [number, number, number, number, boolean, boolean, boolean, boolean][] = [
    [1, 1, 1, 1, false, false, true, true],
    [1, 3, 5, 7, false, false, true, true],
    [1, 17, 33, 65, false, false, true, true],
    [1, 64, 64, 64, false, false, true, true],
    [1, 130, 70, 90, false, false, true, true],
    [1, 130, 70, 90, true, false, true, true],
    [1, 130, 70, 90, false, true, true, true],
    [1, 33, 17, 129, true, true, true, true],
    [3, 17, 33, 65, false, false, true, true],
    [3, 17, 33, 65, true, true, true, true],
    [4, 9, 70, 33, false, true, true, false],
    [4, 9, 70, 33, false, false, true, false],
    [2, 70, 9, 33, true, false, false, true],
    [2, 5, 66, 300, false, true, false, true],
  ];
  for (const [batch, m, n, k, transA, transB, aBatched, bBatched] of mm) {
    const tag = `${batch}x${m}x${n}x${k}${transA ? ' tA' : ''}${transB ? ' tB' : ''}${aBatched ? '' : ' sharedA'}${bBatched ? '' : ' sharedB'}`;
    add({
      kernel: 'matmul',
      shape: tag,
      inputs: { a: rand(rng, (aBatched ? batch : 1) * m * k), b: rand(rng, (bBatched ? batch : 1) * k * n) },
      run: (be, x) => ({ c: be.matmul(x.a!, x.b!, { batch, m, n, k, transA, transB, aBatched, bBatched }) }),
    });
    // Both kernels explicitly (`matmul` above runs the backend's default: subgroup when available).
    for (const subgroups of info.subgroups ? [false, true] : [false]) {
      add({
        kernel: 'matmul',
        shape: `${tag} ${subgroups ? `[subgroup kernel, size ${info.subgroupMinSize || '?'}-${info.subgroupMaxSize || '?'}]` : '[tiled kernel]'}`,
        inputs: { a: rand(rng, (aBatched ? batch : 1) * m * k), b: rand(rng, (bBatched ? batch : 1) * k * n) },
        run: (be, x) => {
          const p = { batch, m, n, k, transA, transB, aBatched, bBatched };
          return { c: isWebGpu(be) ? be.matmulWith(x.a!, x.b!, p, { subgroups }) : be.matmul(x.a!, x.b!, p) };
        },
      });
    }
  }

  // ---- f16 storage: the GPU rounds to f16 (toF16) or reads f16 operands; the reference is the CPU on
  // host-rounded (nearest even) copies, so these check the f16 path's indexing, packing and f32
  // accumulation at f32 tolerance. `f16 error` measures the expected precision loss against unrounded data.
  for (const n of [1, 1001, 70001]) {
    const x = rand(rng, n, -4, 4);
    if (n > 10) x.set([6e-5, -3e-7, 65504, 1 / 3], 3);
    add({
      kernel: 'copy',
      shape: `toF16 (f32 -> f16) ${n}`,
      inputs: { x, xr: roundF16(x) },
      run: (be, h) => (isWebGpu(be) ? { y: be.toF16(h.x!) } : { y: h.xr! }),
    });
  }
  const mm16: [number, number, number, number, boolean, boolean, boolean, 'a' | 'b' | 'ab'][] = [
    [1, 17, 33, 65, false, false, true, 'ab'],
    [1, 130, 70, 90, true, false, true, 'a'],
    [1, 33, 17, 129, true, true, true, 'b'],
    [3, 17, 33, 65, false, true, true, 'ab'],
    [4, 9, 70, 33, false, true, false, 'b'],
  ];
  for (const [batch, m, n, k, transA, transB, bBatched, which] of mm16) {
    const p = { batch, m, n, k, transA, transB, bBatched };
    const a = rand(rng, batch * m * k);
    const b = rand(rng, (bBatched ? batch : 1) * k * n);
    const ha = which !== 'b';
    const hb = which !== 'a';
    const tag = `${batch}x${m}x${n}x${k}${transA ? ' tA' : ''}${transB ? ' tB' : ''}${bBatched ? '' : ' sharedB'} f16 ${which}`;
    for (const subgroups of info.subgroups ? [false, true] : [false]) {
      add({
        kernel: 'matmul',
        shape: `${tag} ${subgroups ? '[subgroup kernel]' : '[tiled kernel]'}`,
        inputs: { a, b, ar: ha ? roundF16(a) : a, br: hb ? roundF16(b) : b },
        run: (be, x) => {
          if (!isWebGpu(be)) return { c: be.matmul(x.ar!, x.br!, p) };
          return { c: be.matmulWith(ha ? be.toF16(x.a!) : x.a!, hb ? be.toF16(x.b!) : x.b!, p, { subgroups }) };
        },
      });
    }
    // Half-precision products within each 16-deep K slice: the same WGSL with an f32 half type everywhere
    // (its indexing and slice accumulation, at f32 tolerance), and the real f16 one where shader-f16 exists
    // (tolerance of 16-term f16 partial sums).
    for (const math of info.shaderF16 ? (['f16-emulated', 'f16'] as const) : (['f16-emulated'] as const)) {
      add({
        kernel: 'matmul',
        shape: `${tag} [f16 math${math === 'f16' ? '' : ', emulated in f32'}]`,
        inputs: { a, b, ar: ha ? roundF16(a) : a, br: hb ? roundF16(b) : b },
        ...(math === 'f16' ? { tol: 5e-3, elemTol: Infinity } : {}),
        run: (be, x) => {
          if (!isWebGpu(be)) return { c: be.matmul(x.ar!, x.br!, p) };
          return { c: be.matmulWith(ha ? be.toF16(x.a!) : x.a!, hb ? be.toF16(x.b!) : x.b!, p, { subgroups: false, math }) };
        },
      });
    }
    add({
      kernel: 'matmul',
      shape: `${tag}: f16 error vs f32 data`,
      inputs: { a, b },
      tol: 2e-3,
      elemTol: Infinity,
      run: (be, x) => ({
        c: isWebGpu(be) ? be.matmul(ha ? be.toF16(x.a!) : x.a!, hb ? be.toF16(x.b!) : x.b!, p) : be.matmul(x.a!, x.b!, p),
      }),
    });
  }
  {
    const a = rand(rng, 300 * 64);
    const b = rand(rng, 64 * 257);
    const p = { batch: 1, m: 300, n: 257, k: 64 };
    add({
      kernel: 'matmul',
      shape: '300x257x64, B uploaded by fromArrayF16',
      inputs: { a, br: roundF16(b) },
      run: (be, x) => ({ c: be.matmul(x.a!, isWebGpu(be) ? be.fromArrayF16(b) : x.br!, p) }),
    });
  }

  // ---- elementwise
  for (const n of [1, 1000, 70001]) {
    const inputs = { a: rand(rng, n), b: rand(rng, n) };
    add({ kernel: 'add', shape: `${n}`, inputs, run: (be, x) => ({ y: be.add(x.a!, x.b!) }) });
    add({ kernel: 'sub', shape: `${n}`, inputs, run: (be, x) => ({ y: be.sub(x.a!, x.b!) }) });
    add({ kernel: 'mul', shape: `${n}`, inputs, run: (be, x) => ({ y: be.mul(x.a!, x.b!) }) });
    add({ kernel: 'scale', shape: `${n}`, inputs, run: (be, x) => ({ y: be.scale(x.a!, -1.7) }) });
    add({ kernel: 'axpy', shape: `${n}`, inputs, run: (be, x) => (be.axpy(x.a!, x.b!, 0.37), { a: x.a! }) });
    add({ kernel: 'sumSquares', shape: `${n}`, inputs, run: (be, x) => ({ s: be.sumSquares(x.a!) }) });
  }
  add({
    kernel: 'axpy',
    shape: '100 self',
    inputs: { a: rand(rng, 100) },
    run: (be, x) => (be.axpy(x.a!, x.a!, 0.5), { a: x.a! }),
  });
  for (const kind of ['gelu_tanh', 'gelu_erf', 'relu', 'silu'] as const) {
    for (const n of [7, 5000]) {
      const inputs = { x: rand(rng, n, -6, 6), dy: rand(rng, n) };
      add({ kernel: `activation ${kind}`, shape: `${n}`, inputs, run: (be, x) => ({ y: be.activation(x.x!, kind) }) });
      add({
        kernel: `activationBackward ${kind}`,
        shape: `${n}`,
        inputs,
        run: (be, x) => ({ dx: be.activationBackward(x.dy!, x.x!, kind) }),
      });
    }
  }
  // Fused gated MLP product vs the CPU's composition activation -> mul (and its backward).
  for (const kind of ['silu', 'gelu_tanh'] as const) {
    for (const n of [7, 5000]) {
      const inputs = { g: rand(rng, n, -6, 6), u: rand(rng, n, -2, 2), dy: rand(rng, n) };
      add({
        kernel: `activation ${kind}`,
        shape: `gated (fused with mul) ${n}`,
        inputs,
        run: (be, x) => ({
          y: isWebGpu(be) ? be.gatedActivation(x.g!, x.u!, kind) : be.mul(be.activation(x.g!, kind), x.u!),
        }),
      });
      add({
        kernel: `activationBackward ${kind}`,
        shape: `gated (fused with mul) ${n}`,
        inputs,
        run: (be, x) => {
          if (isWebGpu(be)) {
            const r = be.gatedActivationBackward(x.dy!, x.g!, x.u!, kind);
            return { dgate: r.dgate, dup: r.dup };
          }
          return {
            dgate: be.activationBackward(be.mul(x.dy!, x.u!), x.g!, kind),
            dup: be.mul(x.dy!, be.activation(x.g!, kind)),
          };
        },
      });
    }
  }
  for (const [rows, cols] of [
    [1, 1],
    [7, 33],
    [130, 70],
  ]) {
    const inputs = { x: rand(rng, rows! * cols!, -3, 3), b: rand(rng, cols!) };
    add({ kernel: 'addBias', shape: `${rows}x${cols}`, inputs, run: (be, x) => ({ y: be.addBias(x.x!, x.b!, rows!, cols!) }) });
  }
  for (const [rows, cols] of [
    [1, 1],
    [7, 33],
    [300, 17],
    [5, 1000],
  ]) {
    add({
      kernel: 'sumRows',
      shape: `${rows}x${cols}`,
      inputs: { x: rand(rng, rows! * cols!) },
      run: (be, x) => ({ y: be.sumRows(x.x!, rows!, cols!) }),
    });
  }

  // ---- memory ops
  for (const [rows, cols, off, width] of [
    [1, 1, 0, 1],
    [7, 33, 5, 11],
    [130, 70, 64, 6],
  ]) {
    const inputs = { x: rand(rng, rows! * cols!), s: rand(rng, rows! * width!) };
    add({
      kernel: 'sliceCols',
      shape: `${rows}x${cols}[${off}:+${width}]`,
      inputs,
      run: (be, x) => ({ y: be.sliceCols(x.x!, rows!, cols!, off!, width!) }),
    });
    add({
      kernel: 'addIntoCols',
      shape: `${rows}x${cols}[${off}:+${width}]`,
      inputs,
      run: (be, x) => (be.addIntoCols(x.x!, x.s!, rows!, cols!, off!, width!), { x: x.x! }),
    });
  }
  add({
    kernel: 'copy',
    shape: '1000 [13:+500] -> [7]',
    inputs: { a: rand(rng, 1000), b: rand(rng, 600) },
    run: (be, x) => (be.copy(x.a!, 13, x.b!, 7, 500), { b: x.b! }),
  });
  add({
    kernel: 'copy',
    shape: 'same buffer, overlapping',
    inputs: { a: rand(rng, 1000) },
    run: (be, x) => (be.copy(x.a!, 0, x.a!, 100, 600), { a: x.a! }),
  });
  add({
    kernel: 'zeros+axpy',
    shape: '77',
    inputs: { a: rand(rng, 77) },
    run: (be, x) => {
      const z = be.zeros(77);
      be.axpy(z, x.a!, 2);
      return { z };
    },
  });

  // ---- embeddings
  for (const [vocab, dim, n] of [
    [1, 1, 1],
    [50, 33, 17],
    [300, 64, 200],
  ]) {
    const ids = ints(rng, n!, vocab!);
    const inputs = { t: rand(rng, vocab! * dim!), dy: rand(rng, n! * dim!) };
    add({ kernel: 'gather', shape: `${vocab}x${dim} ids ${n}`, inputs, run: (be, x) => ({ y: be.gather(x.t!, ids, dim!) }) });
    add({
      kernel: 'scatterAdd',
      shape: `${vocab}x${dim} ids ${n}`,
      inputs,
      run: (be, x) => ({ y: be.scatterAdd(x.dy!, ids, vocab!, dim!) }),
    });
  }

  // ---- norms
  for (const [rows, dim] of [
    [3, 7],
    [17, 65],
    [5, 300],
  ]) {
    const inputs = {
      x: rand(rng, rows! * dim!, -2, 2),
      w: rand(rng, dim!, 0.5, 1.5),
      b: rand(rng, dim!),
      dy: rand(rng, rows! * dim!),
    };
    for (const withBias of [true, false]) {
      add({
        kernel: `layerNorm${withBias ? '' : ' (no bias)'}`,
        shape: `${rows}x${dim}`,
        inputs,
        run: (be, x) => {
          const r = be.layerNorm(x.x!, x.w!, withBias ? x.b! : null, rows!, dim!, 1e-5);
          return { y: r.y, mean: r.mean, rstd: r.rstd };
        },
      });
    }
    add({
      kernel: 'layerNormBackward',
      shape: `${rows}x${dim}`,
      inputs,
      run: (be, x) => {
        const f = be.layerNorm(x.x!, x.w!, x.b!, rows!, dim!, 1e-5);
        const r = be.layerNormBackward(x.dy!, x.x!, x.w!, f.mean, f.rstd, rows!, dim!);
        return { dx: r.dx, dw: r.dw, db: r.db };
      },
    });
    add({
      kernel: 'rmsNorm',
      shape: `${rows}x${dim}`,
      inputs,
      run: (be, x) => {
        const r = be.rmsNorm(x.x!, x.w!, rows!, dim!, 1e-6);
        return { y: r.y, rstd: r.rstd };
      },
    });
    add({
      kernel: 'rmsNormBackward',
      shape: `${rows}x${dim}`,
      inputs,
      run: (be, x) => {
        const f = be.rmsNorm(x.x!, x.w!, rows!, dim!, 1e-6);
        const r = be.rmsNormBackward(x.dy!, x.x!, x.w!, f.rstd, rows!, dim!);
        return { dx: r.dx, dw: r.dw };
      },
    });
  }

  // ---- attention: [B, T, H, Hkv, D, causal]; T around and between the 16-row tiles
  const att: [number, number, number, number, number, boolean][] = [
    [1, 16, 4, 2, 32, true],
    [2, 31, 6, 2, 64, true],
    [1, 48, 2, 2, 16, false],
    [1, 100, 4, 1, 64, true],
    [1, 1, 1, 1, 1, true],
    [1, 5, 2, 1, 3, true],
    [2, 17, 4, 2, 16, true],
    [1, 70, 2, 2, 8, false],
    [1, 67, 4, 1, 64, true],
    [1, 9, 3, 3, 130, false],
    [1, 33, 8, 2, 128, false],
  ];
  for (const [B, T, H, Hkv, D, causal] of att) {
    const p = { B, T, H, Hkv, D, scale: 1 / Math.sqrt(D), causal };
    const tag = `B${B} T${T} H${H} Hkv${Hkv} D${D}${causal ? ' causal' : ''}`;
    const inputs = {
      q: rand(rng, B * T * H * D, -2, 2),
      k: rand(rng, B * T * Hkv * D, -2, 2),
      v: rand(rng, B * T * Hkv * D),
      dout: rand(rng, B * T * H * D),
    };
    add({
      kernel: 'attention',
      shape: tag,
      inputs,
      run: (be, x) => {
        const r = be.attention(x.q!, x.k!, x.v!, p);
        return { out: r.out, lse: r.lse };
      },
    });
    add({
      kernel: 'attentionBackward',
      shape: tag,
      inputs,
      // With a single visible key the softmax is constant, so dq and dk vanish identically.
      zeroOutputs: T === 1 ? ['dq', 'dk'] : undefined,
      run: (be, x) => {
        const f = be.attention(x.q!, x.k!, x.v!, p);
        const r = be.attentionBackward(x.dout!, x.q!, x.k!, x.v!, f.out, f.lse, p);
        return { dq: r.dq, dk: r.dk, dv: r.dv };
      },
    });
  }

  // ---- rope: [B, T, H, D, offset]
  for (const [B, T, H, D, off] of [
    [1, 1, 1, 2, 0],
    [1, 5, 2, 4, 0],
    [2, 17, 3, 16, 7],
    [1, 40, 2, 64, 100],
  ]) {
    const inputs = { x: rand(rng, B! * T! * H! * D!) };
    for (const inverse of [false, true]) {
      add({
        kernel: `rope${inverse ? ' inverse' : ''}`,
        shape: `B${B} T${T} H${H} D${D} off${off}`,
        inputs,
        run: (be, x) => ({ y: be.rope(x.x!, { B: B!, T: T!, H: H!, D: D!, theta: 10000, positionOffset: off }, inverse) }),
      });
    }
  }

  // ---- loss
  for (const [rows, vocab] of [
    [1, 1],
    [5, 7],
    [17, 300],
    [3, 1000],
  ]) {
    const targets = ints(rng, rows!, vocab!);
    if (rows! > 2) targets[1] = -100;
    const inputs = { l: rand(rng, rows! * vocab!, -4, 4), dl: rand(rng, rows!, 0.1, 1) };
    add({
      kernel: 'crossEntropy',
      shape: `${rows}x${vocab}${rows! > 2 ? ' (1 ignored)' : ''}`,
      inputs,
      run: (be, x) => ({ loss: be.crossEntropy(x.l!, targets, rows!, vocab!, -100) }),
    });
    add({
      kernel: 'crossEntropyBackward',
      shape: `${rows}x${vocab}${rows! > 2 ? ' (1 ignored)' : ''}`,
      inputs,
      run: (be, x) => ({ dl: be.crossEntropyBackward(x.l!, targets, x.dl!, rows!, vocab!, -100) }),
    });
  }

  // ---- optimizer
  for (const [n, step] of [
    [1, 1],
    [1000, 1],
    [4097, 7],
  ]) {
    const inputs = { p: rand(rng, n!), g: rand(rng, n!), m: rand(rng, n!, -0.1, 0.1), v: rand(rng, n!, 0.001, 0.1) };
    add({
      kernel: 'adamw',
      shape: `${n} step ${step}`,
      inputs,
      run: (be, x) => {
        be.adamw(x.p!, x.g!, x.m!, x.v!, {
          lr: 1e-3,
          beta1: 0.9,
          beta2: 0.999,
          eps: 1e-8,
          weightDecay: 0.01,
          step: step!,
          gradScale: 0.5,
        });
        return { p: x.p!, m: x.m!, v: x.v! };
      },
    });
  }
  return cases;
}

function isWebGpu(be: Backend): be is WebGpuBackend {
  return be.name === 'webgpu';
}

function upload(be: Backend, inputs: Inputs): Handles {
  const h: Handles = {};
  for (const [k, v] of Object.entries(inputs)) h[k] = be.fromArray(v);
  return h;
}

async function runCase(gpu: WebGpuBackend, cpu: CpuBackend, c: Case, tol: number, elemTol: number): Promise<CaseResult> {
  const t0 = performance.now();
  try {
    const want = c.run(cpu, upload(cpu, c.inputs));
    const gIn = upload(gpu, c.inputs);
    const got = c.run(gpu, gIn);
    let maxRel = 0;
    let normRel = 0;
    let worst: string | undefined;
    for (const [name, ws] of Object.entries(want)) {
      const g = got[name];
      if (!g) throw new Error(`missing output ${name}`);
      const ga = await gpu.read(g);
      if (c.zeroOutputs?.includes(name)) {
        let m = 0;
        for (const v of ga) m = Math.max(m, Math.abs(v));
        if (!(m < 1e-5)) throw new Error(`${name} should be ~0, max |value| is ${m}`);
        continue;
      }
      const e = relErrors(ga, await cpu.read(ws));
      if (e.normRel >= normRel) {
        normRel = e.normRel;
        worst = name;
      }
      maxRel = Math.max(maxRel, e.maxRel);
    }
    const seen = new Set<Storage>();
    for (const s of [...Object.values(gIn), ...Object.values(got)]) {
      if (!seen.has(s)) gpu.free(s);
      seen.add(s);
    }
    return {
      kernel: c.kernel,
      shape: c.shape,
      ok: normRel < (c.tol ?? tol) && maxRel < (c.elemTol ?? elemTol),
      maxRel,
      normRel,
      worst,
      ms: performance.now() - t0,
    };
  } catch (e) {
    return {
      kernel: c.kernel,
      shape: c.shape,
      ok: false,
      maxRel: Infinity,
      normRel: Infinity,
      error: e instanceof Error ? e.message : String(e),
      ms: performance.now() - t0,
    };
  }
}

/** Behaviour checks that are not numeric comparisons: pooling, limits, device loss. */
async function runBehaviour(gpu: WebGpuBackend): Promise<CaseResult[]> {
  const out: CaseResult[] = [];
  const check = async (kernel: string, shape: string, f: () => Promise<string | null>) => {
    const t0 = performance.now();
    let error: string | null;
    try {
      error = await f();
    } catch (e) {
      error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    }
    out.push({ kernel, shape, ok: error === null, maxRel: 0, normRel: 0, ...(error ? { error } : {}), ms: performance.now() - t0 });
  };
  await check('pool', 'free() then alloc reuses the buffer', async () => {
    const a = gpu.fromArray(new Float32Array(1000).fill(1.5));
    await gpu.read(a);
    gpu.free(a);
    const before = gpu.stats.buffersCreated;
    const b = gpu.zeros(1000);
    const got = await gpu.read(b);
    gpu.free(b);
    if (gpu.stats.buffersCreated !== before) return 'a new buffer was created instead of reusing the freed one';
    if (got.some((v) => v !== 0)) return 'reused buffer was not zeroed by zeros()';
    return null;
  });
  await check('limits', 'oversized tensor gives a clear error', async () => {
    const n = Math.floor(gpu.info.limits.maxBufferSize / 4) + 1024;
    try {
      gpu.zeros(n);
    } catch (e) {
      if (e instanceof GpuLimitError && /maxBufferSize/.test(e.message)) return null;
      return `wrong error: ${String(e)}`;
    }
    return 'no error';
  });
  await check('gather split', 'table over the binding limit is gathered in aligned row chunks', async () => {
    // 333 rows x 37 cols (148-byte rows, not a divisor of the 256-byte offset alignment) with 16 KiB chunks: chunks are
    // whole multiples of 64 rows so every binding offset is 256-byte aligned, giving 6 chunks.
    const be = await createWebGpuBackend({ gpu: gpu.gpuApi, splitBindingBytes: 16384 });
    const cpu = new CpuBackend({ dtype: 'f32' });
    const rng = new Rng(5);
    const table = rand(rng, 333 * 37);
    const ids = ints(rng, 500, 333);
    ids[0] = 332;
    ids[1] = 0;
    const before = be.stats.dispatches;
    const got = await be.read(be.gather(be.fromArray(table), ids, 37));
    if (be.stats.dispatches - before !== 6) return `expected 6 chunk dispatches, got ${be.stats.dispatches - before}`;
    const want = await cpu.read(cpu.gather(cpu.fromArray(table), ids, 37));
    const e = relErrors(got, want);
    be.destroy();
    return e.maxRel === 0 ? null : `mismatch: maxRel ${e.maxRel}`;
  });
  await check('matmul batch split', 'batch over the per-dimension dispatch limit runs as several dispatches', async () => {
    // The real limit (65535) takes minutes on SwiftShader; the test hook lowers it to 2.
    const be = await createWebGpuBackend({ gpu: gpu.gpuApi, splitDispatchZ: 2 });
    const cpu = new CpuBackend({ dtype: 'f32' });
    const rng = new Rng(6);
    const a = rand(rng, 5 * 17 * 9);
    const b = rand(rng, 5 * 9 * 70);
    const p = { batch: 5, m: 17, n: 70, k: 9, transA: true };
    const before = be.stats.dispatches;
    const got = await be.read(be.matmul(be.fromArray(a), be.fromArray(b), p));
    const nd = be.stats.dispatches - before;
    const e = relErrors(got, await cpu.read(cpu.matmul(cpu.fromArray(a), cpu.fromArray(b), p)));
    be.destroy();
    if (nd !== 3) return `expected 3 dispatches, got ${nd}`;
    return e.normRel < 1e-4 ? null : `mismatch: normRel ${e.normRel}`;
  });
  await check('attention memory', 'T=1024 forward + backward allocate no T x T buffer', async () => {
    const be = await createWebGpuBackend({ gpu: gpu.gpuApi });
    const rng = new Rng(8);
    const p = { B: 1, T: 1024, H: 2, Hkv: 1, D: 8, scale: 0.35, causal: true };
    const q = be.fromArray(rand(rng, 1024 * 2 * 8));
    const k = be.fromArray(rand(rng, 1024 * 8));
    const v = be.fromArray(rand(rng, 1024 * 8));
    const f = be.attention(q, k, v, p);
    const g = be.attentionBackward(be.fromArray(rand(rng, 1024 * 2 * 8)), q, k, v, f.out, f.lse, p);
    const dq = await be.read(g.dq);
    const largest = be.stats.largestBufferBytes;
    be.destroy();
    if (!dq.every(Number.isFinite)) return 'non-finite dq';
    // One head's score matrix alone would be T * T * 4 = 4 MiB; the biggest tensor here is 64 KiB.
    return largest < 1024 * 1024 ? null : `a ${largest}-byte buffer was created (T x T scores materialised?)`;
  });
  await check('chooseBackend', 'fallback adapter -> CPU unless allowed; real adapter -> WebGPU', async () => {
    const d = await chooseBackend({ gpu: gpu.gpuApi });
    const want = gpu.info.isFallbackAdapter ? 'cpu' : 'webgpu';
    if (d.kind !== want) return `default choice ${d.kind}, expected ${want} (${d.reason})`;
    const a = await chooseBackend({ gpu: gpu.gpuApi, allowFallbackAdapter: true });
    if (a.kind !== 'webgpu') return `with allowFallbackAdapter got ${a.kind} (${a.reason})`;
    for (const c of [d, a]) if (c.kind === 'webgpu') (c.backend as WebGpuBackend).destroy();
    return null;
  });
  await check('device.lost', 'onLost fires and later ops throw DeviceLostError', async () => {
    let lostReason = '';
    const be = await createWebGpuBackend({ gpu: gpu.gpuApi, onLost: (l) => (lostReason = l.reason) });
    const a = be.fromArray([1, 2, 3]);
    await be.read(a);
    be.destroy();
    await be.device.lost;
    await new Promise((r) => setTimeout(r, 0));
    if (!lostReason) return 'onLost not called';
    try {
      be.add(a, a);
    } catch (e) {
      if (e instanceof DeviceLostError) return null;
      return `wrong error: ${String(e)}`;
    }
    return 'no error after loss';
  });
  return out;
}

export interface SuiteOptions {
  seed?: number;
  tol?: number;
  elemTol?: number;
  /** Only kernels whose name contains this string. */
  filter?: string;
  behaviour?: boolean;
}

export async function runKernelSuite(gpu: WebGpuBackend, opts: SuiteOptions = {}): Promise<SuiteResult> {
  const t0 = performance.now();
  const tol = opts.tol ?? 1e-4;
  const elemTol = opts.elemTol ?? 1e-2;
  const cpu = new CpuBackend({ dtype: 'f32' });
  const rng = new Rng(opts.seed ?? 20260425);
  const cases = buildCases(rng, gpu.info).filter((c) => !opts.filter || c.kernel.includes(opts.filter));
  const results: CaseResult[] = [];
  for (const c of cases) results.push(await runCase(gpu, cpu, c, tol, elemTol));
  if (opts.behaviour !== false && !opts.filter) results.push(...(await runBehaviour(gpu)));
  const failed = results.filter((r) => !r.ok).length;
  return {
    backend: gpu.name,
    info: gpu.info,
    tol,
    elemTol,
    cases: results,
    passed: results.length - failed,
    failed,
    ms: performance.now() - t0,
  };
}

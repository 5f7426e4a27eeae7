/**
 * WGSL sources for every Backend op. Each generator returns a complete shader; the backend's pipeline
 * cache is keyed by the final source text, so compile-time variants (transposes, activation kind) are
 * baked in as WGSL `const`s and folded by the compiler instead of branching per element at run time.
 *
 * Conventions shared by all kernels:
 * - Storage bindings come first in declaration order, the uniform struct `U` last.
 * - 1-D kernels use 256 threads and a 2-D grid (x <= 65535) so any length up to the buffer limits fits;
 *   `flat()` recovers the linear index.
 * - Row kernels use one workgroup per row (2-D grid over rows), with tree reductions in workgroup memory;
 *   the reduction order is fixed, so results are deterministic run to run.
 */
import type { Activation } from '../backend';

export const WG1 = 256;

const flatFn = /* wgsl */ `
fn flat(wid: vec3u, nwg: vec3u, lid: u32) -> u32 { return (wid.y * nwg.x + wid.x) * ${WG1}u + lid; }
fn rowOf(wid: vec3u, nwg: vec3u) -> u32 { return wid.y * nwg.x + wid.x; }
`;

/** Workgroup tree reductions for a fixed workgroup size `n` (power of two). Call in uniform control flow. */
function reduceFns(n: number): string {
  return /* wgsl */ `
var<workgroup> red: array<f32, ${n}>;
fn wgSum(v: f32, li: u32) -> f32 {
  red[li] = v;
  workgroupBarrier();
  for (var s = ${n / 2}u; s > 0u; s = s >> 1u) {
    if (li < s) { red[li] = red[li] + red[li + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
var<workgroup> red2: array<vec2<f32>, ${n}>;
fn wgSum2(v: vec2<f32>, li: u32) -> vec2<f32> {
  red2[li] = v;
  workgroupBarrier();
  for (var s = ${n / 2}u; s > 0u; s = s >> 1u) {
    if (li < s) { red2[li] = red2[li] + red2[li + s]; }
    workgroupBarrier();
  }
  let r = red2[0];
  workgroupBarrier();
  return r;
}
fn wgMax(v: f32, li: u32) -> f32 {
  red[li] = v;
  workgroupBarrier();
  for (var s = ${n / 2}u; s > 0u; s = s >> 1u) {
    if (li < s) { red[li] = max(red[li], red[li + s]); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
`;
}

// ---------------------------------------------------------------- matmul

export const MM_TILE_M = 64;
export const MM_TILE_N = 64;
const MM_TILE_K = 16;

/**
 * C[b] = op(A[b]) * op(B[b]): 64x64 output tile per workgroup of 16x16 threads, each thread a 4x4 register
 * block (four vec4 accumulators); 16-deep K slices staged in workgroup memory. Loads are laid out so consecutive threads read
 * consecutive addresses for both the plain and the transposed layout (no separate transpose pass).
 * Out-of-range elements load as zero and are never stored, so any M, N, K works.
 */
export function matmulSrc(transA: boolean, transB: boolean): string {
  // Staging layout: As[k][m] and Bs[k][n] as vec4 rows, so the inner loop is two vec4 workgroup loads and
  // four vec4 FMAs per k step (thread (x, y) owns rows 4y..4y+3 and columns 4x..4x+3 of the tile).
  return /* wgsl */ `
const TRANS_A = ${transA};
const TRANS_B = ${transB};
struct U { M: u32, N: u32, K: u32, strideA: u32, strideB: u32, strideC: u32, z0: u32, _p1: u32 }
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
@group(0) @binding(3) var<uniform> u: U;
var<workgroup> As: array<vec4<f32>, ${(MM_TILE_K * MM_TILE_M) / 4}>;
var<workgroup> Bs: array<vec4<f32>, ${(MM_TILE_K * MM_TILE_N) / 4}>;

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let z = u.z0 + wid.z;
  let aOff = z * u.strideA;
  let bOff = z * u.strideB;
  let cOff = z * u.strideC;
  let row0 = wid.y * ${MM_TILE_M}u;
  let col0 = wid.x * ${MM_TILE_N}u;
  var acc = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
  for (var k0 = 0u; k0 < u.K; k0 += ${MM_TILE_K}u) {
    for (var i = 0u; i < 4u; i++) {
      let e = li + i * 256u;
      var mm: u32; var kk: u32;
      if (TRANS_A) { mm = e % 64u; kk = e / 64u; } else { kk = e % 16u; mm = e / 16u; }
      let gm = row0 + mm; let gk = k0 + kk;
      var v = 0.0;
      if (gm < u.M && gk < u.K) {
        if (TRANS_A) { v = A[aOff + gk * u.M + gm]; } else { v = A[aOff + gm * u.K + gk]; }
      }
      As[kk * 16u + mm / 4u][mm % 4u] = v;
    }
    for (var i = 0u; i < 4u; i++) {
      let e = li + i * 256u;
      var nn: u32; var kk: u32;
      if (TRANS_B) { kk = e % 16u; nn = e / 16u; } else { nn = e % 64u; kk = e / 64u; }
      let gn = col0 + nn; let gk = k0 + kk;
      var v = 0.0;
      if (gn < u.N && gk < u.K) {
        if (TRANS_B) { v = B[bOff + gn * u.K + gk]; } else { v = B[bOff + gk * u.N + gn]; }
      }
      Bs[kk * 16u + nn / 4u][nn % 4u] = v;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      let a = As[kk * 16u + lid.y];
      let b = Bs[kk * 16u + lid.x];
      acc[0] = fma(vec4<f32>(a.x), b, acc[0]);
      acc[1] = fma(vec4<f32>(a.y), b, acc[1]);
      acc[2] = fma(vec4<f32>(a.z), b, acc[2]);
      acc[3] = fma(vec4<f32>(a.w), b, acc[3]);
    }
    workgroupBarrier();
  }
  let c0 = col0 + lid.x * 4u;
  for (var i = 0u; i < 4u; i++) {
    let r = row0 + lid.y * 4u + i;
    if (r < u.M) {
      let o = cOff + r * u.N + c0;
      let v = acc[i];
      if (c0 < u.N) { C[o] = v.x; }
      if (c0 + 1u < u.N) { C[o + 1u] = v.y; }
      if (c0 + 2u < u.N) { C[o + 2u] = v.z; }
      if (c0 + 3u < u.N) { C[o + 3u] = v.w; }
    }
  }
}
`;
}

// ---------------------------------------------------------------- elementwise

export type BinaryOp = 'add' | 'sub' | 'mul';
const binExpr: Record<BinaryOp, string> = { add: 'x + y', sub: 'x - y', mul: 'x * y' };

export function binarySrc(op: BinaryOp): string {
  return /* wgsl */ `
struct U { n: u32, _p0: u32, _p1: u32, _p2: u32 }
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> O: array<f32>;
@group(0) @binding(3) var<uniform> u: U;
${flatFn}
@compute @workgroup_size(${WG1})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= u.n) { return; }
  let x = A[i]; let y = B[i];
  O[i] = ${binExpr[op]};
}
`;
}

export const scaleSrc = /* wgsl */ `
struct U { n: u32, _p0: u32, _p1: u32, s: f32 }
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read_write> O: array<f32>;
@group(0) @binding(2) var<uniform> u: U;
${flatFn}
@compute @workgroup_size(${WG1})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= u.n) { return; }
  O[i] = A[i] * u.s;
}
`;

export const axpySrc = /* wgsl */ `
struct U { n: u32, _p0: u32, _p1: u32, alpha: f32 }
@group(0) @binding(0) var<storage, read> S: array<f32>;
@group(0) @binding(1) var<storage, read_write> D: array<f32>;
@group(0) @binding(2) var<uniform> u: U;
${flatFn}
@compute @workgroup_size(${WG1})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= u.n) { return; }
  D[i] = fma(u.alpha, S[i], D[i]);
}
`;

/** Element copy with offsets (used only when src and dst are the same buffer, where copyBufferToBuffer is
 *  invalid; `overlapSafe` goes through a scratch buffer on the host side). */
export const copySrc = /* wgsl */ `
struct U { n: u32, srcOff: u32, dstOff: u32, _p: u32 }
@group(0) @binding(0) var<storage, read> S: array<f32>;
@group(0) @binding(1) var<storage, read_write> D: array<f32>;
@group(0) @binding(2) var<uniform> u: U;
${flatFn}
@compute @workgroup_size(${WG1})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= u.n) { return; }
  D[u.dstOff + i] = S[u.srcOff + i];
}
`;

/** Activation math shared by the plain, backward and fused bias+activation kernels. */
const actFns = /* wgsl */ `
const SQRT_2_OVER_PI: f32 = 0.7978845608028654;
const INV_SQRT2: f32 = 0.7071067811865476;
const INV_SQRT_2PI: f32 = 0.3989422804014327;
// erfc(|z|) with fractional error < 1.2e-7 everywhere (Numerical Recipes' erfcc); accurate in the tails,
// which a 1 - erf form is not.
fn erfcAbs(z: f32) -> f32 {
  let az = abs(z);
  let t = 1.0 / (1.0 + 0.5 * az);
  return t * exp(-az * az - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
    t * (-0.82215223 + t * 0.17087277)))))))));
}
// Phi(x) = 0.5 * erfc(-x / sqrt 2)
fn normCdf(x: f32) -> f32 {
  let e = erfcAbs(x * INV_SQRT2);
  if (x >= 0.0) { return 1.0 - 0.5 * e; }
  return 0.5 * e;
}
fn tanhSafe(x: f32) -> f32 { return tanh(clamp(x, -10.0, 10.0)); }
fn sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
fn act(x: f32) -> f32 {
  if (ACT == 0u) { return 0.5 * x * (1.0 + tanhSafe(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))); }
  if (ACT == 1u) { return x * normCdf(x); }
  if (ACT == 2u) { return max(x, 0.0); }
  return x * sigmoid(x);
}
fn actGrad(x: f32) -> f32 {
  if (ACT == 0u) {
    let t = tanhSafe(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x));
    let du = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x * x);
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du;
  }
  if (ACT == 1u) { return normCdf(x) + x * INV_SQRT_2PI * exp(-0.5 * x * x); }
  if (ACT == 2u) { return select(0.0, 1.0, x > 0.0); }
  let s = sigmoid(x);
  return s * (1.0 + x * (1.0 - s));
}
`;

const actCode: Record<Activation, number> = { gelu_tanh: 0, gelu_erf: 1, relu: 2, silu: 3 };

export function activationSrc(kind: Activation): string {
  return /* wgsl */ `
const ACT: u32 = ${actCode[kind]}u;
struct U { n: u32, _p0: u32, _p1: u32, _p2: u32 }
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> O: array<f32>;
@group(0) @binding(2) var<uniform> u: U;
${flatFn}
${actFns}
@compute @workgroup_size(${WG1})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= u.n) { return; }
  O[i] = act(X[i]);
}
`;
}

export function activationBackwardSrc(kind: Activation): string {
  return /* wgsl */ `
const ACT: u32 = ${actCode[kind]}u;
struct U { n: u32, _p0: u32, _p1: u32, _p2: u32 }
@group(0) @binding(0) var<storage, read> DY: array<f32>;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> O: array<f32>;
@group(0) @binding(3) var<uniform> u: U;
${flatFn}
${actFns}
@compute @workgroup_size(${WG1})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= u.n) { return; }
  O[i] = DY[i] * actGrad(X[i]);
}
`;
}

/** y = x + bias[c], optionally followed by an activation (ACT = 255 means none): one pass instead of two
 *  for every MLP up-projection. */
export function addBiasSrc(kind: Activation | null): string {
  return /* wgsl */ `
const ACT: u32 = ${kind === null ? 255 : actCode[kind]}u;
struct U { n: u32, cols: u32, _p1: u32, _p2: u32 }
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> Bias: array<f32>;
@group(0) @binding(2) var<storage, read_write> O: array<f32>;
@group(0) @binding(3) var<uniform> u: U;
${flatFn}
${actFns}
@compute @workgroup_size(${WG1})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= u.n) { return; }
  let v = X[i] + Bias[i % u.cols];
  if (ACT == 255u) { O[i] = v; } else { O[i] = act(v); }
}
`;
}

/** out[r, c] = x[r, colOff + c] (ADD=false) or dst[r, colOff + c] += src[r, c] (ADD=true). */
export function colsSrc(add: boolean): string {
  return /* wgsl */ `
struct U { n: u32, cols: u32, colOff: u32, width: u32 }
@group(0) @binding(0) var<storage, read> S: array<f32>;
@group(0) @binding(1) var<storage, read_write> D: array<f32>;
@group(0) @binding(2) var<uniform> u: U;
${flatFn}
@compute @workgroup_size(${WG1})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= u.n) { return; }
  let r = i / u.width; let c = i % u.width;
  ${add ? 'D[r * u.cols + u.colOff + c] += S[i];' : 'D[i] = S[r * u.cols + u.colOff + c];'}
}
`;
}

// ---------------------------------------------------------------- reductions

/**
 * Column reductions over rows (sumRows, LayerNorm/RMSNorm dw and db): a workgroup owns 16 columns; its
 * 16 row-lanes stride over rows, then a fixed-order tree combines the lanes. MODE 0: sum x;
 * 1: LayerNorm (sum dy*xhat, sum dy); 2: RMSNorm (sum dy*xhat).
 */
export function colReduceSrc(mode: 0 | 1 | 2): string {
  const bindings =
    mode === 0
      ? `@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> O: array<f32>;
@group(0) @binding(2) var<uniform> u: U;`
      : mode === 1
        ? `@group(0) @binding(0) var<storage, read> DY: array<f32>;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> Mean: array<f32>;
@group(0) @binding(3) var<storage, read> Rstd: array<f32>;
@group(0) @binding(4) var<storage, read_write> O: array<f32>;
@group(0) @binding(5) var<storage, read_write> O2: array<f32>;
@group(0) @binding(6) var<uniform> u: U;`
        : `@group(0) @binding(0) var<storage, read> DY: array<f32>;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> Rstd: array<f32>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;
@group(0) @binding(4) var<uniform> u: U;`;
  const body =
    mode === 0
      ? 's1 += X[idx];'
      : mode === 1
        ? 'let dy = DY[idx]; s1 += dy * (X[idx] - Mean[r]) * Rstd[r]; s2 += dy;'
        : 's1 += DY[idx] * X[idx] * Rstd[r];';
  return /* wgsl */ `
struct U { rows: u32, cols: u32, _p1: u32, _p2: u32 }
${bindings}
var<workgroup> r1: array<f32, 256>;
var<workgroup> r2: array<f32, 256>;
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let c = wid.x * 16u + lid.x;
  var s1 = 0.0; var s2 = 0.0;
  if (c < u.cols) {
    for (var r = lid.y; r < u.rows; r += 16u) {
      let idx = r * u.cols + c;
      ${body}
    }
  }
  let slot = lid.y * 16u + lid.x;
  r1[slot] = s1; r2[slot] = s2;
  workgroupBarrier();
  for (var s = 8u; s > 0u; s = s >> 1u) {
    if (lid.y < s) {
      r1[slot] = r1[slot] + r1[slot + s * 16u];
      r2[slot] = r2[slot] + r2[slot + s * 16u];
    }
    workgroupBarrier();
  }
  if (lid.y == 0u && c < u.cols) {
    O[c] = r1[lid.x];
    ${mode === 1 ? 'O2[c] = r2[lid.x];' : ''}
  }
}
`;
}

/** sum(x*x) in one workgroup: deterministic, and a single element so global-norm clipping needs no sync. */
export const sumSquaresSrc = /* wgsl */ `
struct U { n: u32, _p0: u32, _p1: u32, _p2: u32 }
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> O: array<f32>;
@group(0) @binding(2) var<uniform> u: U;
${reduceFns(256)}
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) li: u32) {
  var s = 0.0;
  for (var i = li; i < u.n; i += 256u) { let v = X[i]; s = fma(v, v, s); }
  let t = wgSum(s, li);
  if (li == 0u) { O[0] = t; }
}
`;

// ---------------------------------------------------------------- embeddings

/** out[i, :] = table[ids[i] - rowBase, :] for ids in [rowBase, rowBase + rowsBound); others untouched.
 *  rowBase lets a table larger than one binding be gathered chunk by chunk. */
export const gatherSrc = /* wgsl */ `
struct U { n: u32, dim: u32, rowBase: u32, rowsBound: u32 }
@group(0) @binding(0) var<storage, read> T: array<f32>;
@group(0) @binding(1) var<storage, read> Ids: array<i32>;
@group(0) @binding(2) var<storage, read_write> O: array<f32>;
@group(0) @binding(3) var<uniform> u: U;
${flatFn}
@compute @workgroup_size(${WG1})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= u.n) { return; }
  let r = i / u.dim; let c = i % u.dim;
  let id = u32(Ids[r]);
  if (id < u.rowBase || id >= u.rowBase + u.rowsBound) { return; }
  O[i] = T[(id - u.rowBase) * u.dim + c];
}
`;

/**
 * Deterministic scatter-add without atomics: the host groups positions by vocabulary row (CSR: `Rows` are
 * the distinct ids, `Starts`/`Pos` the positions of each), and one thread per (distinct row, column) sums
 * its positions in input order. The output is cleared beforehand, so untouched rows stay zero.
 */
export const scatterAddSrc = /* wgsl */ `
struct U { n: u32, dim: u32, _p1: u32, _p2: u32 }
@group(0) @binding(0) var<storage, read> DY: array<f32>;
@group(0) @binding(1) var<storage, read> Rows: array<i32>;
@group(0) @binding(2) var<storage, read> Starts: array<i32>;
@group(0) @binding(3) var<storage, read> Pos: array<i32>;
@group(0) @binding(4) var<storage, read_write> O: array<f32>;
@group(0) @binding(5) var<uniform> u: U;
${flatFn}
@compute @workgroup_size(${WG1})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= u.n) { return; }
  let g = i / u.dim; let c = i % u.dim;
  var s = 0.0;
  for (var p = Starts[g]; p < Starts[g + 1u]; p++) { s += DY[u32(Pos[p]) * u.dim + c]; }
  O[u32(Rows[g]) * u.dim + c] = s;
}
`;

// ---------------------------------------------------------------- norms

const rowHeader = (n: number) => `${flatFn}
${reduceFns(n)}`;

/** Threads per row for the norm kernels: rows are usually <= a few thousand wide, and a 64-wide tree
 *  needs 6 barriers instead of 8 (barriers dominate on SwiftShader, the CI adapter). */
const NORM_WG = 64;

/** LayerNorm / RMSNorm forward, one workgroup per row; variance by the two-pass formula (stable). */
export function normFwdSrc(rms: boolean, hasBias: boolean): string {
  const b = rms
    ? `@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> W: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
@group(0) @binding(3) var<storage, read_write> Rstd: array<f32>;
@group(0) @binding(4) var<uniform> u: U;`
    : `@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> W: array<f32>;
@group(0) @binding(2) var<storage, read> Bb: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@group(0) @binding(4) var<storage, read_write> Mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> Rstd: array<f32>;
@group(0) @binding(6) var<uniform> u: U;`;
  const body = rms
    ? `var ss = 0.0;
  for (var c = li; c < u.dim; c += ${NORM_WG}u) { let v = X[off + c]; ss = fma(v, v, ss); }
  let rstd = inverseSqrt(wgSum(ss, li) / f32(u.dim) + u.eps);
  for (var c = li; c < u.dim; c += ${NORM_WG}u) { Y[off + c] = X[off + c] * rstd * W[c]; }
  if (li == 0u) { Rstd[row] = rstd; }`
    : `var s = 0.0;
  for (var c = li; c < u.dim; c += ${NORM_WG}u) { s += X[off + c]; }
  let mean = wgSum(s, li) / f32(u.dim);
  var ss = 0.0;
  for (var c = li; c < u.dim; c += ${NORM_WG}u) { let d = X[off + c] - mean; ss = fma(d, d, ss); }
  let rstd = inverseSqrt(wgSum(ss, li) / f32(u.dim) + u.eps);
  for (var c = li; c < u.dim; c += ${NORM_WG}u) {
    var y = (X[off + c] - mean) * rstd * W[c];
    if (HAS_BIAS) { y += Bb[c]; }
    Y[off + c] = y;
  }
  if (li == 0u) { Mean[row] = mean; Rstd[row] = rstd; }`;
  return /* wgsl */ `
const HAS_BIAS = ${hasBias};
struct U { rows: u32, dim: u32, _p: u32, eps: f32 }
${b}
${rowHeader(NORM_WG)}
@compute @workgroup_size(${NORM_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = rowOf(wid, nwg);
  if (row >= u.rows) { return; }
  let off = row * u.dim;
  ${body}
}
`;
}

/** dx of LayerNorm (rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w) or RMSNorm
 *  (rstd * (g - xhat * mean(g * xhat))), one workgroup per row. */
export function normBwdSrc(rms: boolean): string {
  const b = rms
    ? `@group(0) @binding(0) var<storage, read> DY: array<f32>;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> W: array<f32>;
@group(0) @binding(3) var<storage, read> Rstd: array<f32>;
@group(0) @binding(4) var<storage, read_write> DX: array<f32>;
@group(0) @binding(5) var<uniform> u: U;`
    : `@group(0) @binding(0) var<storage, read> DY: array<f32>;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> W: array<f32>;
@group(0) @binding(3) var<storage, read> Mean: array<f32>;
@group(0) @binding(4) var<storage, read> Rstd: array<f32>;
@group(0) @binding(5) var<storage, read_write> DX: array<f32>;
@group(0) @binding(6) var<uniform> u: U;`;
  const mean = rms ? '0.0' : 'Mean[row]';
  return /* wgsl */ `
const RMS = ${rms};
struct U { rows: u32, dim: u32, _p0: u32, _p1: u32 }
${b}
${rowHeader(NORM_WG)}
@compute @workgroup_size(${NORM_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = rowOf(wid, nwg);
  if (row >= u.rows) { return; }
  let off = row * u.dim;
  let mean = ${mean};
  let rstd = Rstd[row];
  var sg = 0.0; var sgx = 0.0;
  for (var c = li; c < u.dim; c += ${NORM_WG}u) {
    let g = DY[off + c] * W[c];
    let xh = (X[off + c] - mean) * rstd;
    sg += g; sgx = fma(g, xh, sgx);
  }
  let sums = wgSum2(vec2<f32>(sg, sgx), li) / f32(u.dim);
  let mg = sums.x;
  let mgx = sums.y;
  for (var c = li; c < u.dim; c += ${NORM_WG}u) {
    let g = DY[off + c] * W[c];
    let xh = (X[off + c] - mean) * rstd;
    if (RMS) { DX[off + c] = rstd * (g - xh * mgx); } else { DX[off + c] = rstd * (g - mg - xh * mgx); }
  }
}
`;
}

// ---------------------------------------------------------------- attention

/** Max head dim: 64 threads x 4 accumulators per thread. */
export const ATTN_MAX_D = 256;
const ATT_WG = 64;

const attnHeader = /* wgsl */ `
struct U { B: u32, T: u32, H: u32, Hkv: u32, D: u32, causal: u32, rows: u32, scale: f32 }
fn qIdx(b: u32, t: u32, h: u32) -> u32 { return ((b * u.T + t) * u.H + h) * u.D; }
fn kIdx(b: u32, t: u32, h: u32) -> u32 { return ((b * u.T + t) * u.Hkv + h) * u.D; }
`;

/**
 * Attention forward: one workgroup per (b, h, query row), keys in chunks of 64 (one score per thread),
 * online softmax across chunks; each thread owns up to 4 output dims. Writes out and lse = m + log(l).
 */
export const attentionFwdSrc = /* wgsl */ `
${attnHeader}
@group(0) @binding(0) var<storage, read> Q: array<f32>;
@group(0) @binding(1) var<storage, read> K: array<f32>;
@group(0) @binding(2) var<storage, read> V: array<f32>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;
@group(0) @binding(4) var<storage, read_write> Lse: array<f32>;
@group(0) @binding(5) var<uniform> u: U;
${rowHeader(ATT_WG)}
var<workgroup> qs: array<f32, ${ATTN_MAX_D}>;
var<workgroup> sp: array<f32, ${ATT_WG}>;
@compute @workgroup_size(${ATT_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = rowOf(wid, nwg);
  if (r >= u.rows) { return; }
  let t = r % u.T; let h = (r / u.T) % u.H; let b = r / (u.T * u.H);
  let kvh = h / (u.H / u.Hkv);
  let qo = qIdx(b, t, h);
  for (var d = li; d < u.D; d += ${ATT_WG}u) { qs[d] = Q[qo + d]; }
  workgroupBarrier();
  var nKeys = u.T;
  if (u.causal != 0u) { nKeys = t + 1u; }
  var m = -1e30; var l = 0.0;
  var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  for (var j0 = 0u; j0 < nKeys; j0 += ${ATT_WG}u) {
    let j = j0 + li;
    var s = -1e30;
    if (j < nKeys) {
      let ko = kIdx(b, j, kvh);
      var dot = 0.0;
      for (var d = 0u; d < u.D; d++) { dot = fma(qs[d], K[ko + d], dot); }
      s = dot * u.scale;
    }
    let mNew = max(m, wgMax(s, li));
    let alpha = exp(m - mNew);
    var p = 0.0;
    if (j < nKeys) { p = exp(s - mNew); }
    sp[li] = p;
    l = l * alpha + wgSum(p, li);
    let cnt = min(${ATT_WG}u, nKeys - j0);
    for (var c = 0u; c < 4u; c++) {
      let d = li + c * ${ATT_WG}u;
      if (d < u.D) {
        var a = acc[c] * alpha;
        for (var jj = 0u; jj < cnt; jj++) { a = fma(sp[jj], V[kIdx(b, j0 + jj, kvh) + d], a); }
        acc[c] = a;
      }
    }
    m = mNew;
    workgroupBarrier();
  }
  for (var c = 0u; c < 4u; c++) {
    let d = li + c * ${ATT_WG}u;
    if (d < u.D) { O[qo + d] = acc[c] / l; }
  }
  if (li == 0u) { Lse[r] = m + log(l); }
}
`;

/** Head dims up to this use the tiled forward; larger ones (rare) the row kernel above. */
export const ATTN_TILED_MAX_D = 128;
/** Query rows per workgroup in the tiled forward. */
export const ATTN_QB = 16;

/**
 * Tiled attention forward: a workgroup owns 16 query rows of one (b, h) and walks the keys in tiles of 16
 * staged in workgroup memory, so each K/V row is read from global memory once per 16 queries instead of
 * once per query. 64 threads: thread = (row r = li / 4, quarter sub = li % 4); a thread scores 4 keys of its
 * row per tile and owns output dims sub, sub+4, ... (up to 32 accumulators); the 4 threads of a row all
 * read the row's 16 scores back to run the same online-softmax update. Strides of 129 floats keep
 * threads reading different key rows off the same memory bank.
 */
export const attentionFwdTiledSrc = /* wgsl */ `
${attnHeader}
@group(0) @binding(0) var<storage, read> Q: array<f32>;
@group(0) @binding(1) var<storage, read> K: array<f32>;
@group(0) @binding(2) var<storage, read> V: array<f32>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;
@group(0) @binding(4) var<storage, read_write> Lse: array<f32>;
@group(0) @binding(5) var<uniform> u: U;
${flatFn}
const QB = ${ATTN_QB}u;
const KB = 16u;
const S = 129u;
var<workgroup> qs: array<f32, ${ATTN_QB * 129}>;
var<workgroup> ks: array<f32, ${16 * 129}>;
var<workgroup> vs: array<f32, ${16 * 129}>;
var<workgroup> ps: array<f32, ${ATTN_QB * 16}>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let blk = rowOf(wid, nwg);
  let nqb = (u.T + QB - 1u) / QB;
  if (blk >= u.B * u.H * nqb) { return; }
  let qb = blk % nqb; let h = (blk / nqb) % u.H; let b = blk / (nqb * u.H);
  let kvh = h / (u.H / u.Hkv);
  let q0 = qb * QB;
  for (var e = li; e < QB * u.D; e += 64u) {
    let rr = e / u.D; let d = e % u.D; let tt = q0 + rr;
    var v = 0.0;
    if (tt < u.T) { v = Q[qIdx(b, tt, h) + d]; }
    qs[rr * S + d] = v;
  }
  let r = li / 4u; let sub = li % 4u;
  let t = q0 + r;
  var m = -1e30; var l = 0.0;
  var acc: array<f32, 32>;
  for (var j = 0u; j < 32u; j++) { acc[j] = 0.0; }
  var kEnd = u.T;
  if (u.causal != 0u) { kEnd = min(u.T, q0 + QB); }
  for (var j0 = 0u; j0 < kEnd; j0 += KB) {
    workgroupBarrier();
    for (var e = li; e < KB * u.D; e += 64u) {
      let jj = e / u.D; let d = e % u.D; let j = j0 + jj;
      var kv = 0.0; var vv = 0.0;
      if (j < u.T) { let o = kIdx(b, j, kvh) + d; kv = K[o]; vv = V[o]; }
      ks[jj * S + d] = kv; vs[jj * S + d] = vv;
    }
    workgroupBarrier();
    for (var c = 0u; c < 4u; c++) {
      let jj = sub * 4u + c; let j = j0 + jj;
      var sc = -1e30;
      if (j < u.T && (u.causal == 0u || j <= t)) {
        var dot = 0.0;
        for (var d = 0u; d < u.D; d++) { dot = fma(qs[r * S + d], ks[jj * S + d], dot); }
        sc = dot * u.scale;
      }
      ps[r * KB + jj] = sc;
    }
    workgroupBarrier();
    var mx = m;
    for (var jj = 0u; jj < KB; jj++) { mx = max(mx, ps[r * KB + jj]); }
    let alpha = exp(m - mx);
    for (var j = 0u; j < 32u; j++) { acc[j] = acc[j] * alpha; }
    var psum = 0.0;
    for (var jj = 0u; jj < KB; jj++) {
      let sc = ps[r * KB + jj];
      if (sc > -1e29) {
        let p = exp(sc - mx);
        psum += p;
        for (var j = 0u; j < 32u; j++) {
          let d = sub + 4u * j;
          if (d < u.D) { acc[j] = fma(p, vs[jj * S + d], acc[j]); }
        }
      }
    }
    l = l * alpha + psum;
    m = mx;
  }
  if (t < u.T) {
    let o = qIdx(b, t, h);
    for (var j = 0u; j < 32u; j++) {
      let d = sub + 4u * j;
      if (d < u.D) { O[o + d] = acc[j] / l; }
    }
    if (sub == 0u) { Lse[(b * u.H + h) * u.T + t] = m + log(l); }
  }
}
`;

/** Dq[b,h,t] = sum_d dout*out (the softmax-backward row term), one thread per query row. */
export const attentionDeltaSrc = /* wgsl */ `
${attnHeader}
@group(0) @binding(0) var<storage, read> DO: array<f32>;
@group(0) @binding(1) var<storage, read> O: array<f32>;
@group(0) @binding(2) var<storage, read_write> Delta: array<f32>;
@group(0) @binding(3) var<uniform> u: U;
${flatFn}
@compute @workgroup_size(${WG1})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = flat(wid, nwg, li);
  if (r >= u.rows) { return; }
  let t = r % u.T; let h = (r / u.T) % u.H; let b = r / (u.T * u.H);
  let o = qIdx(b, t, h);
  var s = 0.0;
  for (var d = 0u; d < u.D; d++) { s = fma(DO[o + d], O[o + d], s); }
  Delta[r] = s;
}
`;

/** dq for one (b, h, query row): recompute P from lse, dS = P * (dout.v - delta), dq = scale * dS K. */
export const attentionDqSrc = /* wgsl */ `
${attnHeader}
@group(0) @binding(0) var<storage, read> DO: array<f32>;
@group(0) @binding(1) var<storage, read> Q: array<f32>;
@group(0) @binding(2) var<storage, read> K: array<f32>;
@group(0) @binding(3) var<storage, read> V: array<f32>;
@group(0) @binding(4) var<storage, read> Lse: array<f32>;
@group(0) @binding(5) var<storage, read> Delta: array<f32>;
@group(0) @binding(6) var<storage, read_write> DQ: array<f32>;
@group(0) @binding(7) var<uniform> u: U;
${flatFn}
var<workgroup> qs: array<f32, ${ATTN_MAX_D}>;
var<workgroup> dos: array<f32, ${ATTN_MAX_D}>;
var<workgroup> sds: array<f32, ${ATT_WG}>;
@compute @workgroup_size(${ATT_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = rowOf(wid, nwg);
  if (r >= u.rows) { return; }
  let t = r % u.T; let h = (r / u.T) % u.H; let b = r / (u.T * u.H);
  let kvh = h / (u.H / u.Hkv);
  let qo = qIdx(b, t, h);
  for (var d = li; d < u.D; d += ${ATT_WG}u) { qs[d] = Q[qo + d]; dos[d] = DO[qo + d]; }
  workgroupBarrier();
  let lse = Lse[r]; let delta = Delta[r];
  var nKeys = u.T;
  if (u.causal != 0u) { nKeys = t + 1u; }
  var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  for (var j0 = 0u; j0 < nKeys; j0 += ${ATT_WG}u) {
    let j = j0 + li;
    var ds = 0.0;
    if (j < nKeys) {
      let ko = kIdx(b, j, kvh);
      var qk = 0.0; var dv = 0.0;
      for (var d = 0u; d < u.D; d++) { qk = fma(qs[d], K[ko + d], qk); dv = fma(dos[d], V[ko + d], dv); }
      let p = exp(qk * u.scale - lse);
      ds = p * (dv - delta);
    }
    sds[li] = ds;
    workgroupBarrier();
    let cnt = min(${ATT_WG}u, nKeys - j0);
    for (var c = 0u; c < 4u; c++) {
      let d = li + c * ${ATT_WG}u;
      if (d < u.D) {
        var a = acc[c];
        for (var jj = 0u; jj < cnt; jj++) { a = fma(sds[jj], K[kIdx(b, j0 + jj, kvh) + d], a); }
        acc[c] = a;
      }
    }
    workgroupBarrier();
  }
  for (var c = 0u; c < 4u; c++) {
    let d = li + c * ${ATT_WG}u;
    if (d < u.D) { DQ[qo + d] = acc[c] * u.scale; }
  }
}
`;

/** dk, dv for one (b, kv head, key row): loops over the query heads of its group and the query rows that
 *  see this key, so GQA's sum over heads needs no atomics. */
export const attentionDkvSrc = /* wgsl */ `
${attnHeader}
@group(0) @binding(0) var<storage, read> DO: array<f32>;
@group(0) @binding(1) var<storage, read> Q: array<f32>;
@group(0) @binding(2) var<storage, read> K: array<f32>;
@group(0) @binding(3) var<storage, read> V: array<f32>;
@group(0) @binding(4) var<storage, read> Lse: array<f32>;
@group(0) @binding(5) var<storage, read> Delta: array<f32>;
@group(0) @binding(6) var<storage, read_write> DK: array<f32>;
@group(0) @binding(7) var<storage, read_write> DV: array<f32>;
@group(0) @binding(8) var<uniform> u: U;
${flatFn}
var<workgroup> ks: array<f32, ${ATTN_MAX_D}>;
var<workgroup> vs: array<f32, ${ATTN_MAX_D}>;
var<workgroup> sps: array<f32, ${ATT_WG}>;
var<workgroup> sds: array<f32, ${ATT_WG}>;
@compute @workgroup_size(${ATT_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let r = rowOf(wid, nwg);
  let kvRows = u.B * u.Hkv * u.T;
  if (r >= kvRows) { return; }
  let j = r % u.T; let kvh = (r / u.T) % u.Hkv; let b = r / (u.T * u.Hkv);
  let ko = kIdx(b, j, kvh);
  for (var d = li; d < u.D; d += ${ATT_WG}u) { ks[d] = K[ko + d]; vs[d] = V[ko + d]; }
  workgroupBarrier();
  let group = u.H / u.Hkv;
  var i0s = 0u;
  if (u.causal != 0u) { i0s = j; }
  var accK = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  var accV = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
  for (var g = 0u; g < group; g++) {
    let h = kvh * group + g;
    for (var i0 = i0s; i0 < u.T; i0 += ${ATT_WG}u) {
      let i = i0 + li;
      var p = 0.0; var ds = 0.0;
      if (i < u.T) {
        let qo = qIdx(b, i, h);
        var qk = 0.0; var dv = 0.0;
        for (var d = 0u; d < u.D; d++) { qk = fma(Q[qo + d], ks[d], qk); dv = fma(DO[qo + d], vs[d], dv); }
        let row = (b * u.H + h) * u.T + i;
        p = exp(qk * u.scale - Lse[row]);
        ds = p * (dv - Delta[row]);
      }
      sps[li] = p; sds[li] = ds;
      workgroupBarrier();
      let cnt = min(${ATT_WG}u, u.T - i0);
      for (var c = 0u; c < 4u; c++) {
        let d = li + c * ${ATT_WG}u;
        if (d < u.D) {
          var ak = accK[c]; var av = accV[c];
          for (var ii = 0u; ii < cnt; ii++) {
            let qo = qIdx(b, i0 + ii, h) + d;
            ak = fma(sds[ii], Q[qo], ak);
            av = fma(sps[ii], DO[qo], av);
          }
          accK[c] = ak; accV[c] = av;
        }
      }
      workgroupBarrier();
    }
  }
  for (var c = 0u; c < 4u; c++) {
    let d = li + c * ${ATT_WG}u;
    if (d < u.D) { DK[ko + d] = accK[c] * u.scale; DV[ko + d] = accV[c]; }
  }
}
`;

/** Head dims up to this use the tiled backward kernels (four 16-row tiles of stride 65 fit in 32 KiB). */
export const ATTN_TILED_BWD_MAX_D = 64;

const tiledBwdCommon = /* wgsl */ `
${attnHeader}
@group(0) @binding(0) var<storage, read> DO: array<f32>;
@group(0) @binding(1) var<storage, read> Q: array<f32>;
@group(0) @binding(2) var<storage, read> K: array<f32>;
@group(0) @binding(3) var<storage, read> V: array<f32>;
@group(0) @binding(4) var<storage, read> Lse: array<f32>;
@group(0) @binding(5) var<storage, read> Delta: array<f32>;
${flatFn}
const TB = 16u;
const S = 65u;
var<workgroup> qs: array<f32, ${16 * 65}>;
var<workgroup> dos: array<f32, ${16 * 65}>;
var<workgroup> ks: array<f32, ${16 * 65}>;
var<workgroup> vs: array<f32, ${16 * 65}>;
`;

/**
 * Tiled dq: 16 query rows of one (b, h) per workgroup, keys in tiles of 16 staged with their V rows;
 * thread (row r = li / 4, quarter sub) computes dS for 4 keys of its row, then accumulates dS K over the
 * dims it owns (sub, sub+4, ...).
 */
export const attentionDqTiledSrc = /* wgsl */ `
${tiledBwdCommon}
@group(0) @binding(6) var<storage, read_write> DQ: array<f32>;
@group(0) @binding(7) var<uniform> u: U;
var<workgroup> dsm: array<f32, 256>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let blk = rowOf(wid, nwg);
  let nqb = (u.T + TB - 1u) / TB;
  if (blk >= u.B * u.H * nqb) { return; }
  let qb = blk % nqb; let h = (blk / nqb) % u.H; let b = blk / (nqb * u.H);
  let kvh = h / (u.H / u.Hkv);
  let q0 = qb * TB;
  for (var e = li; e < TB * u.D; e += 64u) {
    let rr = e / u.D; let d = e % u.D; let tt = q0 + rr;
    var qv = 0.0; var dv = 0.0;
    if (tt < u.T) { let o = qIdx(b, tt, h) + d; qv = Q[o]; dv = DO[o]; }
    qs[rr * S + d] = qv; dos[rr * S + d] = dv;
  }
  let r = li / 4u; let sub = li % 4u;
  let t = q0 + r;
  var lse = 0.0; var delta = 0.0;
  if (t < u.T) { let row = (b * u.H + h) * u.T + t; lse = Lse[row]; delta = Delta[row]; }
  var acc: array<f32, 16>;
  for (var j = 0u; j < 16u; j++) { acc[j] = 0.0; }
  var kEnd = u.T;
  if (u.causal != 0u) { kEnd = min(u.T, q0 + TB); }
  for (var j0 = 0u; j0 < kEnd; j0 += TB) {
    workgroupBarrier();
    for (var e = li; e < TB * u.D; e += 64u) {
      let jj = e / u.D; let d = e % u.D; let j = j0 + jj;
      var kv = 0.0; var vv = 0.0;
      if (j < u.T) { let o = kIdx(b, j, kvh) + d; kv = K[o]; vv = V[o]; }
      ks[jj * S + d] = kv; vs[jj * S + d] = vv;
    }
    workgroupBarrier();
    for (var c = 0u; c < 4u; c++) {
      let jj = sub * 4u + c; let j = j0 + jj;
      var g = 0.0;
      if (t < u.T && j < u.T && (u.causal == 0u || j <= t)) {
        var qk = 0.0; var dp = 0.0;
        for (var d = 0u; d < u.D; d++) {
          qk = fma(qs[r * S + d], ks[jj * S + d], qk);
          dp = fma(dos[r * S + d], vs[jj * S + d], dp);
        }
        g = exp(qk * u.scale - lse) * (dp - delta);
      }
      dsm[r * TB + jj] = g;
    }
    workgroupBarrier();
    for (var jj = 0u; jj < TB; jj++) {
      let g = dsm[r * TB + jj];
      for (var j = 0u; j < 16u; j++) {
        let d = sub + 4u * j;
        if (d < u.D) { acc[j] = fma(g, ks[jj * S + d], acc[j]); }
      }
    }
  }
  if (t < u.T) {
    let o = qIdx(b, t, h);
    for (var j = 0u; j < 16u; j++) {
      let d = sub + 4u * j;
      if (d < u.D) { DQ[o + d] = acc[j] * u.scale; }
    }
  }
}
`;

/**
 * Tiled dk/dv: 16 key rows of one (b, kv head) per workgroup; loops over the query heads of the group and
 * the query tiles that can see these keys, staging Q and dO tiles; thread (key row r, quarter sub).
 */
export const attentionDkvTiledSrc = /* wgsl */ `
${tiledBwdCommon}
@group(0) @binding(6) var<storage, read_write> DK: array<f32>;
@group(0) @binding(7) var<storage, read_write> DV: array<f32>;
@group(0) @binding(8) var<uniform> u: U;
var<workgroup> pm: array<f32, 256>;
var<workgroup> dm: array<f32, 256>;
var<workgroup> lsm: array<f32, 16>;
var<workgroup> dlm: array<f32, 16>;
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let blk = rowOf(wid, nwg);
  let nkb = (u.T + TB - 1u) / TB;
  if (blk >= u.B * u.Hkv * nkb) { return; }
  let kb = blk % nkb; let kvh = (blk / nkb) % u.Hkv; let b = blk / (nkb * u.Hkv);
  let j0 = kb * TB;
  for (var e = li; e < TB * u.D; e += 64u) {
    let jj = e / u.D; let d = e % u.D; let j = j0 + jj;
    var kv = 0.0; var vv = 0.0;
    if (j < u.T) { let o = kIdx(b, j, kvh) + d; kv = K[o]; vv = V[o]; }
    ks[jj * S + d] = kv; vs[jj * S + d] = vv;
  }
  let r = li / 4u; let sub = li % 4u;
  let j = j0 + r;
  var accK: array<f32, 16>;
  var accV: array<f32, 16>;
  for (var x = 0u; x < 16u; x++) { accK[x] = 0.0; accV[x] = 0.0; }
  let group = u.H / u.Hkv;
  var iStart = 0u;
  if (u.causal != 0u) { iStart = j0; }
  for (var g = 0u; g < group; g++) {
    let h = kvh * group + g;
    for (var i0 = iStart; i0 < u.T; i0 += TB) {
      workgroupBarrier();
      for (var e = li; e < TB * u.D; e += 64u) {
        let ii = e / u.D; let d = e % u.D; let i = i0 + ii;
        var qv = 0.0; var dv = 0.0;
        if (i < u.T) { let o = qIdx(b, i, h) + d; qv = Q[o]; dv = DO[o]; }
        qs[ii * S + d] = qv; dos[ii * S + d] = dv;
      }
      if (li < TB) {
        let i = i0 + li;
        var a = 0.0; var c = 0.0;
        if (i < u.T) { let row = (b * u.H + h) * u.T + i; a = Lse[row]; c = Delta[row]; }
        lsm[li] = a; dlm[li] = c;
      }
      workgroupBarrier();
      for (var c = 0u; c < 4u; c++) {
        let ii = sub * 4u + c; let i = i0 + ii;
        var p = 0.0; var ds = 0.0;
        if (i < u.T && j < u.T && (u.causal == 0u || j <= i)) {
          var qk = 0.0; var dp = 0.0;
          for (var d = 0u; d < u.D; d++) {
            qk = fma(qs[ii * S + d], ks[r * S + d], qk);
            dp = fma(dos[ii * S + d], vs[r * S + d], dp);
          }
          p = exp(qk * u.scale - lsm[ii]);
          ds = p * (dp - dlm[ii]);
        }
        pm[r * TB + ii] = p; dm[r * TB + ii] = ds;
      }
      workgroupBarrier();
      for (var ii = 0u; ii < TB; ii++) {
        let p = pm[r * TB + ii]; let ds = dm[r * TB + ii];
        for (var x = 0u; x < 16u; x++) {
          let d = sub + 4u * x;
          if (d < u.D) {
            accV[x] = fma(p, dos[ii * S + d], accV[x]);
            accK[x] = fma(ds, qs[ii * S + d], accK[x]);
          }
        }
      }
    }
  }
  if (j < u.T) {
    let o = kIdx(b, j, kvh);
    for (var x = 0u; x < 16u; x++) {
      let d = sub + 4u * x;
      if (d < u.D) { DK[o + d] = accK[x] * u.scale; DV[o + d] = accV[x]; }
    }
  }
}
`;

/** Rotary embedding (rotate_half) from a host-computed cos/sin table [T, D/2, 2] (computed in f64 on the
 *  host, so angles for long positions stay accurate). SIGN = -1 applies the inverse rotation. */
export const ropeSrc = /* wgsl */ `
struct U { n: u32, T: u32, H: u32, D: u32, sign: f32, _p0: u32, _p1: u32, _p2: u32 }
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> CS: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
@group(0) @binding(3) var<uniform> u: U;
${flatFn}
@compute @workgroup_size(${WG1})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= u.n) { return; }
  let half = u.D / 2u;
  let d = i % half;
  let bth = i / half;
  let t = (bth / u.H) % u.T;
  let base = bth * u.D;
  let c = CS[(t * half + d) * 2u];
  let s = CS[(t * half + d) * 2u + 1u] * u.sign;
  let x1 = X[base + d]; let x2 = X[base + d + half];
  Y[base + d] = x1 * c - x2 * s;
  Y[base + d + half] = x2 * c + x1 * s;
}
`;

// ---------------------------------------------------------------- loss

/** Per-row cross-entropy (BACKWARD=false) or its fused softmax backward, one workgroup per row. */
export function crossEntropySrc(backward: boolean): string {
  const b = backward
    ? `@group(0) @binding(0) var<storage, read> L: array<f32>;
@group(0) @binding(1) var<storage, read> Tg: array<i32>;
@group(0) @binding(2) var<storage, read> DL: array<f32>;
@group(0) @binding(3) var<storage, read_write> O: array<f32>;
@group(0) @binding(4) var<uniform> u: U;`
    : `@group(0) @binding(0) var<storage, read> L: array<f32>;
@group(0) @binding(1) var<storage, read> Tg: array<i32>;
@group(0) @binding(2) var<storage, read_write> O: array<f32>;
@group(0) @binding(3) var<uniform> u: U;`;
  const tail = backward
    ? `let scale = DL[row] / sum;
  for (var c = li; c < u.vocab; c += 256u) {
    if (ignored) { O[off + c] = 0.0; continue; }
    var g = exp(L[off + c] - mx) * scale;
    if (i32(c) == tgt) { g -= DL[row]; }
    O[off + c] = g;
  }`
    : `if (li == 0u) {
    if (ignored) { O[row] = 0.0; } else { O[row] = log(sum) + mx - L[off + u32(tgt)]; }
  }`;
  return /* wgsl */ `
struct U { rows: u32, vocab: u32, ignore: i32, _p: u32 }
${b}
${rowHeader(256)}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = rowOf(wid, nwg);
  if (row >= u.rows) { return; }
  let off = row * u.vocab;
  let tgt = Tg[row];
  let ignored = tgt == u.ignore;
  var m = -3.4e38;
  for (var c = li; c < u.vocab; c += 256u) { m = max(m, L[off + c]); }
  let mx = wgMax(m, li);
  var s = 0.0;
  for (var c = li; c < u.vocab; c += 256u) { s += exp(L[off + c] - mx); }
  let sum = wgSum(s, li);
  ${tail}
}
`;
}

// ---------------------------------------------------------------- optimizer

export const adamwSrc = /* wgsl */ `
struct U { n: u32, _p0: u32, _p1: u32, _p2: u32,
           lr: f32, beta1: f32, beta2: f32, eps: f32, wd: f32, bc1: f32, bc2: f32, gradScale: f32 }
@group(0) @binding(0) var<storage, read> G: array<f32>;
@group(0) @binding(1) var<storage, read_write> P: array<f32>;
@group(0) @binding(2) var<storage, read_write> M: array<f32>;
@group(0) @binding(3) var<storage, read_write> Vv: array<f32>;
@group(0) @binding(4) var<uniform> u: U;
${flatFn}
@compute @workgroup_size(${WG1})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= u.n) { return; }
  let g = G[i] * u.gradScale;
  let m = u.beta1 * M[i] + (1.0 - u.beta1) * g;
  let v = u.beta2 * Vv[i] + (1.0 - u.beta2) * g * g;
  M[i] = m; Vv[i] = v;
  // Same operation order as the CPU reference: decay first, then the Adam step.
  P[i] = P[i] * (1.0 - u.lr * u.wd) - (u.lr * (m / u.bc1)) / (sqrt(v / u.bc2) + u.eps);
}
`;

/**
 * WGSL pieces shared by several kernel families. Conventions:
 * - 1-D kernels use 256 threads and a 2-D grid (x <= 65535) so any length up to the buffer limits fits;
 *   `flat()` recovers the linear index.
 * - Row kernels use one workgroup per row (2-D grid over rows), with tree reductions in workgroup memory;
 *   the reduction order is fixed, so results are deterministic run to run.
 */
import type { Activation } from '../../backend';

export const WG1 = 256;

export const flatFn = /* wgsl */ `
fn flat(wid: vec3u, nwg: vec3u, lid: u32) -> u32 { return (wid.y * nwg.x + wid.x) * ${WG1}u + lid; }
fn rowOf(wid: vec3u, nwg: vec3u) -> u32 { return wid.y * nwg.x + wid.x; }
`;

/** Workgroup tree reductions for a fixed workgroup size `n` (power of two). Call in uniform control flow. */
export function reduceFns(n: number): string {
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

/** Activation math shared by the plain, backward and fused bias+activation kernels. */
export const actFns = /* wgsl */ `
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

export const actCode: Record<Activation, number> = { gelu_tanh: 0, gelu_erf: 1, relu: 2, silu: 3 };

export const rowHeader = (n: number) => `${flatFn}
${reduceFns(n)}`;

/** Entry point of a 1-D kernel over `u.n` elements: `body` runs with the element index `i`. */
export function perElement(body: string): string {
  return /* wgsl */ `${flatFn}
@compute @workgroup_size(${WG1})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = flat(wid, nwg, li);
  if (i >= u.n) { return; }
  ${body.trim()}
}
`;
}

/**
 * Norm family: LayerNorm / RMSNorm forward and dx backward, one workgroup per row (the weight gradients
 * are column reductions in ./reduce.ts). References: CpuBackend.layerNorm / rmsNorm (+ backward); tests:
 * the norm cases of ../suite.ts.
 */
import { rowHeader } from './common';
import { defineKernel, ro, rw, variants } from './define';

/** Threads per row for the norm kernels: rows are usually <= a few thousand wide, and a 64-wide tree
 *  needs 6 barriers instead of 8 (barriers dominate on SwiftShader, the CI adapter). */
const NORM_WG = 64;

function rowMain(body: string): string {
  return /* wgsl */ `
${rowHeader(NORM_WG)}
@compute @workgroup_size(${NORM_WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = rowOf(wid, nwg);
  if (row >= u.rows) { return; }
  let off = row * u.dim;
  ${body.trim()}
}
`;
}

/** LayerNorm forward; variance by the two-pass formula (stable). Without a bias the backend binds the
 *  weight again as `Bb` (read-only aliasing is allowed) and HAS_BIAS folds the add away. */
export const layerNormKernel = variants((hasBias: boolean) =>
  defineKernel({
    name: 'layerNorm',
    bindings: { X: ro(), W: ro(), Bb: ro(), Y: rw(), Mean: rw(), Rstd: rw() },
    uniforms: { rows: 'u32', dim: 'u32', eps: 'f32' },
    body: `const HAS_BIAS = ${hasBias};\n${rowMain(`
  var s = 0.0;
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
  if (li == 0u) { Mean[row] = mean; Rstd[row] = rstd; }`)}`,
  }),
);

export const rmsNormKernel = defineKernel({
  name: 'rmsNorm',
  bindings: { X: ro(), W: ro(), Y: rw(), Rstd: rw() },
  uniforms: { rows: 'u32', dim: 'u32', eps: 'f32' },
  body: rowMain(`
  var ss = 0.0;
  for (var c = li; c < u.dim; c += ${NORM_WG}u) { let v = X[off + c]; ss = fma(v, v, ss); }
  let rstd = inverseSqrt(wgSum(ss, li) / f32(u.dim) + u.eps);
  for (var c = li; c < u.dim; c += ${NORM_WG}u) { Y[off + c] = X[off + c] * rstd * W[c]; }
  if (li == 0u) { Rstd[row] = rstd; }`),
});

/** dx of LayerNorm (rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w) or RMSNorm
 *  (rstd * (g - xhat * mean(g * xhat))). */
function normBwdBody(rms: boolean): string {
  return `const RMS = ${rms};\n${rowMain(`
  let mean = ${rms ? '0.0' : 'Mean[row]'};
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
  }`)}`;
}

export const layerNormBackwardKernel = defineKernel({
  name: 'layerNormBackward',
  bindings: { DY: ro(), X: ro(), W: ro(), Mean: ro(), Rstd: ro(), DX: rw() },
  uniforms: { rows: 'u32', dim: 'u32' },
  body: normBwdBody(false),
});

export const rmsNormBackwardKernel = defineKernel({
  name: 'rmsNormBackward',
  bindings: { DY: ro(), X: ro(), W: ro(), Rstd: ro(), DX: rw() },
  uniforms: { rows: 'u32', dim: 'u32' },
  body: normBwdBody(true),
});

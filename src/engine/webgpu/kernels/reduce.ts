/**
 * Reduction family: column sums over rows (sumRows and the norms' weight/bias gradients) and the global
 * sum of squares. References: CpuBackend.sumRows / sumSquares / layerNormBackward / rmsNormBackward;
 * tests: the `sumRows`, `sumSquares` and norm-backward cases of ../suite.ts.
 */
import { reduceFns } from './common';
import { defineKernel, ro, rw } from './define';

function colReduceBody(accumulate: string, store2: boolean): string {
  return /* wgsl */ `
var<workgroup> r1: array<f32, 256>;
var<workgroup> r2: array<f32, 256>;
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let c = wid.x * 16u + lid.x;
  var s1 = 0.0; var s2 = 0.0;
  if (c < u.cols) {
    for (var r = lid.y; r < u.rows; r += 16u) {
      let idx = r * u.cols + c;
      ${accumulate}
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
    ${store2 ? 'O2[c] = r2[lid.x];' : ''}
  }
}
`;
}

/*
 * Column reductions over rows: a workgroup owns 16 columns; its 16 row-lanes stride over rows, then a
 * fixed-order tree combines the lanes. Dispatch ceil(cols / 16) workgroups.
 */

/** O[c] = sum_r X[r, c]. */
export const sumRowsKernel = defineKernel({
  name: 'sumRows',
  bindings: { X: ro(), O: rw() },
  uniforms: { rows: 'u32', cols: 'u32' },
  body: colReduceBody('s1 += X[idx];', false),
});

/** LayerNorm dw = sum dy * xhat, db = sum dy. */
export const layerNormDwKernel = defineKernel({
  name: 'layerNormBackward dw',
  bindings: { DY: ro(), X: ro(), Mean: ro(), Rstd: ro(), O: rw(), O2: rw() },
  uniforms: { rows: 'u32', cols: 'u32' },
  body: colReduceBody('let dy = DY[idx]; s1 += dy * (X[idx] - Mean[r]) * Rstd[r]; s2 += dy;', true),
});

/** RMSNorm dw = sum dy * xhat. */
export const rmsNormDwKernel = defineKernel({
  name: 'rmsNormBackward dw',
  bindings: { DY: ro(), X: ro(), Rstd: ro(), O: rw() },
  uniforms: { rows: 'u32', cols: 'u32' },
  body: colReduceBody('s1 += DY[idx] * X[idx] * Rstd[r];', false),
});

/** sum(x*x) in one workgroup: deterministic, and a single element so global-norm clipping needs no sync. */
export const sumSquaresKernel = defineKernel({
  name: 'sumSquares',
  bindings: { X: ro(), O: rw() },
  uniforms: { n: 'u32' },
  body: /* wgsl */ `
${reduceFns(256)}
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) li: u32) {
  var s = 0.0;
  for (var i = li; i < u.n; i += 256u) { let v = X[i]; s = fma(v, v, s); }
  let t = wgSum(s, li);
  if (li == 0u) { O[0] = t; }
}
`,
});

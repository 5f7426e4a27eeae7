/**
 * Loss family: per-row cross-entropy and its fused softmax backward, one workgroup per row. Reference:
 * CpuBackend.crossEntropy / crossEntropyBackward; tests: the `crossEntropy*` cases of ../suite.ts.
 */
import { rowHeader } from './common';
import { defineKernel, ro, rw } from './define';

function ceBody(tail: string): string {
  return /* wgsl */ `
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

export const crossEntropyKernel = defineKernel({
  name: 'crossEntropy',
  bindings: { L: ro(), Tg: ro('i32'), O: rw() },
  uniforms: { rows: 'u32', vocab: 'u32', ignore: 'i32' },
  body: ceBody(`if (li == 0u) {
    if (ignored) { O[row] = 0.0; } else { O[row] = log(sum) + mx - L[off + u32(tgt)]; }
  }`),
});

export const crossEntropyBackwardKernel = defineKernel({
  name: 'crossEntropyBackward',
  bindings: { L: ro(), Tg: ro('i32'), DL: ro(), O: rw() },
  uniforms: { rows: 'u32', vocab: 'u32', ignore: 'i32' },
  body: ceBody(`let scale = DL[row] / sum;
  for (var c = li; c < u.vocab; c += 256u) {
    if (ignored) { O[off + c] = 0.0; continue; }
    var g = exp(L[off + c] - mx) * scale;
    if (i32(c) == tgt) { g -= DL[row]; }
    O[off + c] = g;
  }`),
});

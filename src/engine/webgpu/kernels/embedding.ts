/**
 * Embedding family: row gather and its deterministic scatter-add gradient. References: CpuBackend.gather /
 * scatterAdd; tests: the `gather`, `scatterAdd` and `gather split` cases of ../suite.ts.
 */
import { perElement } from './common';
import { defineKernel, ro, rw } from './define';

/** out[i, :] = table[ids[i] - rowBase, :] for ids in [rowBase, rowBase + rowsBound); others untouched.
 *  rowBase lets a table larger than one binding be gathered chunk by chunk. */
export const gatherKernel = defineKernel({
  name: 'gather',
  bindings: { T: ro(), Ids: ro('i32'), O: rw() },
  uniforms: { n: 'u32', dim: 'u32', rowBase: 'u32', rowsBound: 'u32' },
  body: perElement(`let r = i / u.dim; let c = i % u.dim;
  let id = u32(Ids[r]);
  if (id < u.rowBase || id >= u.rowBase + u.rowsBound) { return; }
  O[i] = T[(id - u.rowBase) * u.dim + c];`),
});

/**
 * Deterministic scatter-add without atomics: the host groups positions by vocabulary row (CSR: `Rows` are
 * the distinct ids, `Starts`/`Pos` the positions of each), and one thread per (distinct row, column) sums
 * its positions in input order. The output is cleared beforehand, so untouched rows stay zero.
 */
export const scatterAddKernel = defineKernel({
  name: 'scatterAdd',
  bindings: { DY: ro(), Rows: ro('i32'), Starts: ro('i32'), Pos: ro('i32'), O: rw() },
  uniforms: { n: 'u32', dim: 'u32' },
  body: perElement(`let g = i / u.dim; let c = i % u.dim;
  var s = 0.0;
  for (var p = Starts[g]; p < Starts[g + 1u]; p++) { s += DY[u32(Pos[p]) * u.dim + c]; }
  O[u32(Rows[g]) * u.dim + c] = s;`),
});

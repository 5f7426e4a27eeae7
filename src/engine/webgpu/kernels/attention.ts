/**
 * Attention family (flash-attention style: no T x T score matrix is ever stored). The forward walks keys in
 * tiles with an online softmax and saves the per-row log-sum-exp; the backward recomputes the
 * probabilities tile by tile from that LSE (dq over key tiles, dk/dv over query tiles, GQA summed in the
 * dk/dv kernel without atomics). Plus rotary embedding. References: CpuBackend.attention /
 * attentionBackward / rope; tests: the `attention*` and `rope*` cases of ../suite.ts.
 */
import { flatFn, perElement, rowHeader, WG1 } from './common';
import { defineKernel, ro, rw, type UniformType } from './define';

/** Uniforms shared by every attention kernel (rows = B * H * T). */
const ATTN_UNIFORMS: Record<'B' | 'T' | 'H' | 'Hkv' | 'D' | 'causal' | 'rows' | 'scale', UniformType> = {
  B: 'u32',
  T: 'u32',
  H: 'u32',
  Hkv: 'u32',
  D: 'u32',
  causal: 'u32',
  rows: 'u32',
  scale: 'f32',
};

/** Max head dim: 64 threads x 4 accumulators per thread. */
export const ATTN_MAX_D = 256;
const ATT_WG = 64;

const attnFns = /* wgsl */ `
fn qIdx(b: u32, t: u32, h: u32) -> u32 { return ((b * u.T + t) * u.H + h) * u.D; }
fn kIdx(b: u32, t: u32, h: u32) -> u32 { return ((b * u.T + t) * u.Hkv + h) * u.D; }
`;

/**
 * Attention forward: one workgroup per (b, h, query row), keys in chunks of 64 (one score per thread),
 * online softmax across chunks; each thread owns up to 4 output dims. Writes out and lse = m + log(l).
 */
export const attentionFwdKernel = defineKernel({
  name: 'attentionFwd',
  bindings: { Q: ro(), K: ro(), V: ro(), O: rw(), Lse: rw() },
  uniforms: ATTN_UNIFORMS,
  body: /* wgsl */ `
${attnFns}
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
`,
});

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
export const attentionFwdTiledKernel = defineKernel({
  name: 'attentionFwdTiled',
  bindings: { Q: ro(), K: ro(), V: ro(), O: rw(), Lse: rw() },
  uniforms: ATTN_UNIFORMS,
  body: /* wgsl */ `
${attnFns}
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
`,
});

/** Dq[b,h,t] = sum_d dout*out (the softmax-backward row term), one thread per query row. */
export const attentionDeltaKernel = defineKernel({
  name: 'attentionDelta',
  bindings: { DO: ro(), O: ro(), Delta: rw() },
  uniforms: ATTN_UNIFORMS,
  body: /* wgsl */ `
${attnFns}
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
`,
});

/** dq for one (b, h, query row): recompute P from lse, dS = P * (dout.v - delta), dq = scale * dS K. */
export const attentionDqKernel = defineKernel({
  name: 'attentionDq',
  bindings: { DO: ro(), Q: ro(), K: ro(), V: ro(), Lse: ro(), Delta: ro(), DQ: rw() },
  uniforms: ATTN_UNIFORMS,
  body: /* wgsl */ `
${attnFns}
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
`,
});

/** dk, dv for one (b, kv head, key row): loops over the query heads of its group and the query rows that
 *  see this key, so GQA's sum over heads needs no atomics. */
export const attentionDkvKernel = defineKernel({
  name: 'attentionDkv',
  bindings: { DO: ro(), Q: ro(), K: ro(), V: ro(), Lse: ro(), Delta: ro(), DK: rw(), DV: rw() },
  uniforms: ATTN_UNIFORMS,
  body: /* wgsl */ `
${attnFns}
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
`,
});

/** Head dims up to this use the tiled backward kernels (four 16-row tiles of stride 65 fit in 32 KiB). */
export const ATTN_TILED_BWD_MAX_D = 64;

const tiledBwdCommon = /* wgsl */ `
${attnFns}
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
export const attentionDqTiledKernel = defineKernel({
  name: 'attentionDqTiled',
  bindings: { DO: ro(), Q: ro(), K: ro(), V: ro(), Lse: ro(), Delta: ro(), DQ: rw() },
  uniforms: ATTN_UNIFORMS,
  body: /* wgsl */ `
${tiledBwdCommon}
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
`,
});

/**
 * Tiled dk/dv: 16 key rows of one (b, kv head) per workgroup; loops over the query heads of the group and
 * the query tiles that can see these keys, staging Q and dO tiles; thread (key row r, quarter sub).
 */
export const attentionDkvTiledKernel = defineKernel({
  name: 'attentionDkvTiled',
  bindings: { DO: ro(), Q: ro(), K: ro(), V: ro(), Lse: ro(), Delta: ro(), DK: rw(), DV: rw() },
  uniforms: ATTN_UNIFORMS,
  body: /* wgsl */ `
${tiledBwdCommon}
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
`,
});

/** Rotary embedding (rotate_half) from a host-computed cos/sin table [T, D/2, 2] (computed in f64 on the
 *  host, so angles for long positions stay accurate). sign = -1 applies the inverse rotation. */
export const ropeKernel = defineKernel({
  name: 'rope',
  bindings: { X: ro(), CS: ro(), Y: rw() },
  uniforms: { n: 'u32', T: 'u32', H: 'u32', D: 'u32', sign: 'f32' },
  body: perElement(`let half = u.D / 2u;
  let d = i % half;
  let bth = i / half;
  let t = (bth / u.H) % u.T;
  let base = bth * u.D;
  let c = CS[(t * half + d) * 2u];
  let s = CS[(t * half + d) * 2u + 1u] * u.sign;
  let x1 = X[base + d]; let x2 = X[base + d + half];
  Y[base + d] = x1 * c - x2 * s;
  Y[base + d + half] = x2 * c + x1 * s;`),
});

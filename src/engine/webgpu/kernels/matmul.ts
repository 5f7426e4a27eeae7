/**
 * Matmul family. Reference: CpuBackend.matmul (src/engine/cpu/backend.ts); backend entry:
 * WebGpuBackend.matmul; tests: the `matmul` cases of ../suite.ts; benchmark: ../bench.ts `benchMatmul`.
 */
import { defineKernel, ro, rw, variants, type Elem } from './define';

export const MM_TILE_M = 64;
export const MM_TILE_N = 64;
const MM_TILE_K = 16;

/**
 * How an operand is stored. `f32`: plain. `f16`: IEEE half in `array<f16>`, needs the device feature
 * `shader-f16`. `f16p`: the same bytes read as `array<u32>` (two halves per word, element 2j in the low
 * half) and unpacked with `unpack2x16float`, which is core WGSL: f16 storage on every device, and the way
 * the f16 path is tested where `shader-f16` is missing (SwiftShader). Products always accumulate in f32.
 */
export type MatmulOperand = 'f32' | 'f16' | 'f16p';

export interface MatmulVariant {
  transA: boolean;
  transB: boolean;
  a?: MatmulOperand;
  b?: MatmulOperand;
  /** Share the A operand through subgroup shuffles instead of workgroup memory (device feature `subgroups`). */
  subgroups?: boolean;
  /** Multiply in half precision within each 16-deep K slice (tiled kernel only): `f16` needs shader-f16;
   *  `f16-emulated` is the same kernel with an f32 half type (tests). */
  math?: 'f32' | 'f16' | 'f16-emulated';
}

const operandElem: Record<MatmulOperand, Elem> = { f32: 'f32', f16: 'f16', f16p: 'u32' };

function loadFn(name: 'A' | 'B', kind: MatmulOperand): string {
  const ret = kind === 'f32' ? `${name}[i]` : kind === 'f16' ? `f32(${name}[i])` : `unpack2x16float(${name}[i >> 1u])[i & 1u]`;
  return `fn load${name}(i: u32) -> f32 { return ${ret}; }`;
}

/** Cooperative load of one 16 x 64 tile of B into Bs[k][n] (vec4 rows), laid out so consecutive threads read
 *  consecutive addresses for the plain and the transposed layout (the subgroup kernel's B staging). */
const stageB = /* wgsl */ `
    for (var i = 0u; i < 4u; i++) {
      let e = li + i * 256u;
      var nn: u32; var kk: u32;
      if (TRANS_B) { kk = e % 16u; nn = e / 16u; } else { nn = e % 64u; kk = e / 64u; }
      let gn = col0 + nn; let gk = k0 + kk;
      var v = 0.0;
      if (gn < u.N && gk < u.K) {
        if (TRANS_B) { v = loadB(bOff + gn * u.K + gk); } else { v = loadB(bOff + gk * u.N + gn); }
      }
      Bs[kk * 16u + nn / 4u][nn % 4u] = v;
    }`;

/** Stores the 4x4 register block of thread (x, y) (rows 4y.., columns 4x..), skipping out-of-range cells. */
const storeC = /* wgsl */ `
  let c0 = col0 + tx * 4u;
  for (var i = 0u; i < 4u; i++) {
    let r = row0 + ty * 4u + i;
    if (r < u.M) {
      let o = cOff + r * u.N + c0;
      let v = acc[i];
      if (c0 < u.N) { C[o] = v.x; }
      if (c0 + 1u < u.N) { C[o + 1u] = v.y; }
      if (c0 + 2u < u.N) { C[o + 2u] = v.z; }
      if (c0 + 3u < u.N) { C[o + 3u] = v.w; }
    }
  }`;

/**
 * Subgroup variant of the same 64x64 tile and 4x4 register blocks: B is staged in workgroup memory as in
 * the tiled kernel, but A never goes through workgroup memory. Each thread loads the A values of its own
 * four rows for a few k of the slice, and the threads that share those rows (the same row group of one
 * subgroup) exchange them with subgroupShuffle. WGSL does not fix how invocations map to subgroups, so
 * subgroups number themselves (one atomic ticket per subgroup) and threads take their tile position from
 * (ticket, lane). Works for any power-of-two subgroup size from 4 to 128: with w = min(size, 16) threads
 * sharing a row group, each thread holds 16 / w k values per slice.
 */
function subgroupMain(): string {
  return /* wgsl */ `
var<workgroup> Bs: array<vec4<f32>, ${(MM_TILE_K * MM_TILE_N) / 4}>;
var<workgroup> tickets: atomic<u32>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32,
        @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) sgSize: u32) {
  var ticket = 0u;
  if (subgroupElect()) { ticket = atomicAdd(&tickets, 1u); }
  let sg = subgroupBroadcastFirst(ticket);
  let vt = sg * sgSize + lane;
  let tx = vt % 16u;
  let ty = vt / 16u;
  let w = min(sgSize, 16u);
  let chunks = 16u / w;
  let groupBase = lane - lane % w;
  let z = u.z0 + wid.z;
  let aOff = z * u.strideA;
  let bOff = z * u.strideB;
  let cOff = z * u.strideC;
  let row0 = wid.y * ${MM_TILE_M}u;
  let col0 = wid.x * ${MM_TILE_N}u;
  var acc = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
  var aReg: array<vec4<f32>, 4>;
  for (var k0 = 0u; k0 < u.K; k0 += ${MM_TILE_K}u) {
    for (var c = 0u; c < chunks; c++) {
      let gk = k0 + c * w + lane % w;
      var a = vec4<f32>(0.0);
      for (var i = 0u; i < 4u; i++) {
        let gm = row0 + ty * 4u + i;
        if (gm < u.M && gk < u.K) {
          if (TRANS_A) { a[i] = loadA(aOff + gk * u.M + gm); } else { a[i] = loadA(aOff + gm * u.K + gk); }
        }
      }
      aReg[c] = a;
    }
${stageB}
    workgroupBarrier();
    for (var kk = 0u; kk < 16u; kk++) {
      let a = subgroupShuffle(aReg[kk / w], groupBase + kk % w);
      let b = Bs[kk * 16u + tx];
      acc[0] = fma(vec4<f32>(a.x), b, acc[0]);
      acc[1] = fma(vec4<f32>(a.y), b, acc[1]);
      acc[2] = fma(vec4<f32>(a.z), b, acc[2]);
      acc[3] = fma(vec4<f32>(a.w), b, acc[3]);
    }
    workgroupBarrier();
  }
${storeC}
}
`;
}

// Staging layout: As[k][m] and Bs[k][n] as vec4 rows, so the inner loop is two vec4 workgroup loads and
// four vec4 FMAs per k step (thread (x, y) owns rows 4y..4y+3 and columns 4x..4x+3 of the tile).
const tiledMain = /* wgsl */ `
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
        if (TRANS_A) { v = loadA(aOff + gk * u.M + gm); } else { v = loadA(aOff + gm * u.K + gk); }
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
        if (TRANS_B) { v = loadB(bOff + gn * u.K + gk); } else { v = loadB(bOff + gk * u.N + gn); }
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

/**
 * Half-precision math variant of the tiled kernel: tiles staged as `H` in workgroup memory and each 16-deep
 * K slice multiplied-and-added in `H` (vec4 FMAs at twice the f32 rate on most GPUs), the slice's partial
 * sums then added to f32 accumulators, so the error grows with 16 terms, not with K. `H` is f16 on devices
 * with shader-f16; the same WGSL with H = f32 is how the kernel's indexing is checked everywhere else.
 */
function halfMathMain(h: 'f16' | 'f32'): string {
  const z = `vec4<${h}>(0.0)`;
  return tiledMain
    .replace(/array<vec4<f32>, (\d+)>;/g, `array<vec4<${h}>, $1>;`)
    .replace('As[kk * 16u + mm / 4u][mm % 4u] = v;', `As[kk * 16u + mm / 4u][mm % 4u] = ${h}(v);`)
    .replace('Bs[kk * 16u + nn / 4u][nn % 4u] = v;', `Bs[kk * 16u + nn / 4u][nn % 4u] = ${h}(v);`)
    .replace(
      '    for (var kk = 0u; kk < 16u; kk++) {',
      `    var part = array<vec4<${h}>, 4>(${z}, ${z}, ${z}, ${z});\n    for (var kk = 0u; kk < 16u; kk++) {`,
    )
    .replace(/acc\[(\d)\] = fma\(vec4<f32>\(a\.(\w)\), b, acc\[\d\]\);/g, `part[$1] = fma(vec4<${h}>(a.$2), b, part[$1]);`)
    .replace(
      '    workgroupBarrier();\n  }\n  let c0',
      '    for (var i = 0u; i < 4u; i++) { acc[i] += vec4<f32>(part[i]); }\n    workgroupBarrier();\n  }\n  let c0',
    );
}

/**
 * C[b] = op(A[b]) * op(B[b]) (C is f32): 64x64 output tile per workgroup of 256 threads, each thread a 4x4
 * register block (four vec4 accumulators); 16-deep K slices staged in workgroup memory. Out-of-range
 * elements load as zero and are never stored, so any M, N, K works. Compile-time variants (transposes,
 * operand storage) are WGSL constants and functions folded by the compiler.
 */
export const matmulKernel = variants((transA: boolean, transB: boolean, opts: Omit<MatmulVariant, 'transA' | 'transB'> = {}) => {
  const a = opts.a ?? 'f32';
  const b = opts.b ?? 'f32';
  const math = opts.math ?? 'f32';
  if (math !== 'f32' && opts.subgroups) throw new Error('matmul: half-precision math is a variant of the tiled kernel');
  const enable: string[] = [];
  if (a === 'f16' || b === 'f16' || math === 'f16') enable.push('f16');
  if (opts.subgroups) enable.push('subgroups');
  const tag = [
    transA ? 'tA' : '',
    transB ? 'tB' : '',
    a !== 'f32' ? `A:${a}` : '',
    b !== 'f32' ? `B:${b}` : '',
    opts.subgroups ? 'subgroup' : '',
    math !== 'f32' ? `math:${math}` : '',
  ]
    .filter(Boolean)
    .join(' ');
  return defineKernel({
    name: `matmul${tag ? ` ${tag}` : ''}`,
    enable,
    bindings: { A: ro(operandElem[a]), B: ro(operandElem[b]), C: rw() },
    uniforms: { M: 'u32', N: 'u32', K: 'u32', strideA: 'u32', strideB: 'u32', strideC: 'u32', z0: 'u32' },
    body: /* wgsl */ `
const TRANS_A = ${transA};
const TRANS_B = ${transB};
${loadFn('A', a)}
${loadFn('B', b)}
${opts.subgroups ? subgroupMain() : math === 'f32' ? tiledMain : halfMathMain(math === 'f16' ? 'f16' : 'f32')}`,
  });
});

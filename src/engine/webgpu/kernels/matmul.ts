/**
 * Matmul family. Reference: CpuBackend.matmul (src/engine/cpu/backend.ts); backend entry:
 * WebGpuBackend.matmul; tests: the `matmul` cases of ../suite.ts; benchmark: ../bench.ts `benchMatmul`.
 */
import { defineKernel, ro, rw, variants } from './define';

export const MM_TILE_M = 64;
export const MM_TILE_N = 64;
const MM_TILE_K = 16;

/**
 * C[b] = op(A[b]) * op(B[b]): 64x64 output tile per workgroup of 16x16 threads, each thread a 4x4 register
 * block (four vec4 accumulators); 16-deep K slices staged in workgroup memory. Loads are laid out so
 * consecutive threads read consecutive addresses for both the plain and the transposed layout (no separate
 * transpose pass). Out-of-range elements load as zero and are never stored, so any M, N, K works.
 * Compile-time variants (transposes) are WGSL `const`s folded by the compiler.
 */
export const matmulKernel = variants((transA: boolean, transB: boolean) =>
  defineKernel({
    name: `matmul${transA ? ' tA' : ''}${transB ? ' tB' : ''}`,
    bindings: { A: ro(), B: ro(), C: rw() },
    uniforms: { M: 'u32', N: 'u32', K: 'u32', strideA: 'u32', strideB: 'u32', strideC: 'u32', z0: 'u32' },
    // Staging layout: As[k][m] and Bs[k][n] as vec4 rows, so the inner loop is two vec4 workgroup loads and
    // four vec4 FMAs per k step (thread (x, y) owns rows 4y..4y+3 and columns 4x..4x+3 of the tile).
    body: /* wgsl */ `
const TRANS_A = ${transA};
const TRANS_B = ${transB};
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
`,
  }),
);

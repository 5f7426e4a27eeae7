// WebGPU benchmarks in Node through Dawn (the optional `webgpu` package): matmul GFLOP/s of each kernel
// variant (tiled / subgroup, f32 / f16 operands) with its fraction of the GPU's peak, and the training-step
// speed of the bench model (demo widths, 6 layers). Prints one table; writes e2e/artifacts/gpu-node-bench.json.
//   npx tsx tools/gpu/node-bench.ts [--sizes=1024,2048,4096] [--peak-fp32=TFLOPS --peak-fp16=TFLOPS]
//                                   [--train-layers=6] [--train-t=64]
// Without --peak-* the peak is looked up by adapter name (table below; unknown GPUs print no fraction).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchTrainStep } from '../../src/engine/webgpu/bench';
import type { WebGpuBackend } from '../../src/engine/webgpu/backend';
import { createNodeWebGpuBackend } from '../../src/engine/webgpu/node';
import { describeRun, gpuRunInfo } from '../../src/engine/webgpu/run-info';
import { specFromHFConfig } from '../../src/model/hf';
import { denseLayers } from '../../src/model/spec';

const here = dirname(fileURLToPath(import.meta.url));
const arg = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];

/**
 * Peak TFLOP/s, approximate vendor figures: fp32 (FMA) and fp16 *without* tensor cores (WebGPU has no
 * access to matrix units, so that is the ceiling a WGSL kernel can approach). Override with --peak-*.
 */
const PEAKS: [RegExp, number, number][] = [
  [/H200|H100.*SXM|GH100/i, 67, 134],
  [/H100/i, 51, 102],
  [/A100/i, 19.5, 78],
  [/L40S/i, 91.6, 91.6],
  [/L4\b/i, 30.3, 30.3],
  [/A10\b/i, 31.2, 31.2],
  [/T4\b/i, 8.1, 16.3],
  [/RTX 4090/i, 82.6, 82.6],
  [/RTX 3090/i, 35.6, 35.6],
];

function peaksFor(be: WebGpuBackend): { fp32: number | null; fp16: number | null; source: string } {
  const p32 = arg('peak-fp32');
  const p16 = arg('peak-fp16');
  if (p32 || p16) return { fp32: p32 ? Number(p32) : null, fp16: p16 ? Number(p16) : null, source: 'command line' };
  const name = `${be.info.vendor} ${be.info.architecture} ${be.info.device} ${be.info.description}`;
  for (const [re, f32, f16] of PEAKS) if (re.test(name)) return { fp32: f32, fp16: f16, source: `table (${re.source})` };
  return { fp32: null, fp16: null, source: `unknown adapter '${name.trim()}': pass --peak-fp32/--peak-fp16` };
}

function median(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)]!;
}

async function timeMatmul(be: WebGpuBackend, n: number, f16: boolean, subgroups: boolean, math: 'f32' | 'f16' = 'f32'): Promise<number> {
  const host = Float32Array.from({ length: n * n }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  const A = f16 ? be.fromArrayF16(host) : be.fromArray(host);
  const B = f16 ? be.fromArrayF16(host) : be.fromArray(host);
  const p = { batch: 1, m: n, n, k: n };
  be.free(be.matmulWith(A, B, p, { subgroups, math }));
  await be.sync();
  const t1 = performance.now();
  be.free(be.matmulWith(A, B, p, { subgroups, math }));
  await be.sync();
  const one = Math.max(performance.now() - t1, 0.05);
  const inner = Math.max(1, Math.min(100, Math.floor(300 / one)));
  const times: number[] = [];
  for (let r = 0; r < 3; r++) {
    const t = performance.now();
    for (let i = 0; i < inner; i++) be.free(be.matmulWith(A, B, p, { subgroups, math }));
    await be.sync();
    times.push((performance.now() - t) / inner);
  }
  be.free(A);
  be.free(B);
  return median(times);
}

const be = await createNodeWebGpuBackend();
const i = be.info;
const peaks = peaksFor(be);
console.log(
  `[gpu-bench] adapter ${i.vendor}/${i.architecture} ${i.description} fallback=${i.isFallbackAdapter} ` +
    `shader-f16=${i.shaderF16} subgroups=${i.subgroups} (sizes ${i.subgroupMinSize}-${i.subgroupMaxSize})`,
);
console.log(`[gpu-bench] backend: ${describeRun({ kind: 'webgpu', gpu: gpuRunInfo(i, 'Dawn') })}`);
console.log(`[gpu-bench] peak fp32 ${peaks.fp32 ?? '?'} TFLOP/s, fp16 ${peaks.fp16 ?? '?'} TFLOP/s (${peaks.source})`);
const sizes = (arg('sizes') ?? (i.isFallbackAdapter ? '256,512' : '1024,2048,4096')).split(',').map(Number);
const rows: Record<string, unknown>[] = [];
console.log('     n  kernel    operands        GFLOP/s  % fp32 peak  % fp16 peak');
for (const n of sizes) {
  for (const subgroups of i.subgroups ? [false, true] : [false]) {
    for (const f16 of [false, true]) {
      const ms = await timeMatmul(be, n, f16, subgroups);
      const gflops = (2 * n ** 3) / ms / 1e6;
      const pct = (peak: number | null) => (peak ? ((100 * gflops) / (peak * 1000)).toFixed(1) : '-');
      const operands = f16 ? `f16 (${i.uses.f16Operands})` : 'f32';
      rows.push({ n, kernel: subgroups ? 'subgroup' : 'tiled', operands, ms, gflops });
      console.log(
        `${String(n).padStart(6)}  ${(subgroups ? 'subgroup' : 'tiled').padEnd(8)}  ${operands.padEnd(14)}` +
          `${gflops.toFixed(1).padStart(9)}  ${pct(peaks.fp32).padStart(11)}  ${pct(peaks.fp16).padStart(11)}`,
      );
    }
  }
  if (i.shaderF16) {
    const ms = await timeMatmul(be, n, true, false, 'f16');
    const gflops = (2 * n ** 3) / ms / 1e6;
    rows.push({ n, kernel: 'tiled, f16 math', operands: 'f16 (native)', ms, gflops });
    const pct16 = peaks.fp16 ? ((100 * gflops) / (peaks.fp16 * 1000)).toFixed(1) : '-';
    console.log(
      `${String(n).padStart(6)}  ${'tiled, f16 math'.padEnd(24)}${gflops.toFixed(1).padStart(9)}  ${'-'.padStart(11)}  ${pct16.padStart(11)}`,
    );
  }
}

let train: Awaited<ReturnType<typeof benchTrainStep>> | null = null;
if (arg('train-layers') !== '0') {
  const config = JSON.parse(readFileSync(join(here, '..', '..', 'public', 'models', 'demo', 'config.json'), 'utf8'));
  const spec = specFromHFConfig(config);
  spec.layers = denseLayers(Number(arg('train-layers') ?? 6), spec.intermediateSize);
  const T = Number(arg('train-t') ?? 64);
  train = await benchTrainStep(be, spec, 1, T, i.isFallbackAdapter ? 1 : 10);
  console.log(
    `[gpu-bench] train step (demo widths, ${train.layers} layers, ${train.tokens} tokens): ${train.msPerStep.toFixed(1)} ms, ` +
      `${train.tokensPerSec.toFixed(0)} tokens/s; ${train.dispatchesPerStep} dispatches, ${train.submitsPerStep} submits per step`,
  );
}
const outDir = join(here, '..', '..', 'e2e', 'artifacts');
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'gpu-node-bench.json'), JSON.stringify({ info: i, peaks, matmul: rows, train }, null, 2));
be.destroy();
process.exit(0);

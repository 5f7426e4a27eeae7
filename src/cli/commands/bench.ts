/**
 * `gradot bench`: throughput of our engine beside a reference measured in the same process/run, printed as
 * ratios (never asserted in tests: wall-clock numbers belong here, correctness belongs in the test suite).
 *
 * Sections (all by default, or `--only a,b`):
 *   matmul    CPU backend f32 GFLOP/s vs PyTorch (Debian python3-torch) on the same square sizes
 *   train     forward+backward+AdamW tokens/s of a 6-layer d=256 LLaMA-family model vs the same in PyTorch
 *             (on the backend --backend picks: WebGPU through Dawn on a GPU server)
 *   compress  time of each GradOT phase (support pass, SVDs, scoring/selection, packaging) on that model
 *   ort       evaluation tokens/s of our engine vs onnxruntime on the same model (when src/onnx is built)
 *   cpu       every CPU-backend ratio at 1 and N threads (--threads): matmul and train step vs torch on
 *             OpenBLAS at the same thread count, thread scaling, the TensorFlow.js wasm peer (not in the default set;
 *             --repeat R keeps the best of R interleaved rounds, for a shared machine)
 *   svd       exact SVD vs torch.linalg.svd (and our Jacobi reference) at 768x3072, 896x4864, 2048x5632
 *   scale     (only with --only scale: minutes per model) gradot compress on hub-shaped gpt2 / opt-125m / ...
 *             with time and peak memory per phase, beside torch forward+backward and SVD (src/cli/bench-scale.ts)
 */
import { parseCommandArgs } from '../args';
import type { Command, CommandResult } from '../command';
import { compareMatmulWithTorch, formatMatmulComparison } from '../../engine/bench';
import { compareTrainStep, formatTrainBench, benchSpec, DEFAULT_BENCH_TRAIN } from '../../model/bench-train';
import { CpuBackend } from '../../engine/cpu/backend';
import { randomModel } from '../../model/random-model';
import { Rng } from '../../engine/random';
import { BACKEND_OPTIONS, BACKEND_USAGE, openCliBackend } from '../backend';

const SECTIONS = ['matmul', 'train', 'compress', 'ort', 'cpu', 'svd', 'scale'] as const;
/** Run when no --only is given ('cpu' repeats matmul/train at several thread counts, 'svd' and 'scale' take minutes: asked for by name). */
const DEFAULT_SECTIONS: readonly Section[] = ['matmul', 'train', 'compress', 'ort'];
type Section = (typeof SECTIONS)[number];

async function benchCompress(): Promise<{ json: Record<string, unknown>; text: string }> {
  const { buildEmulator } = await import('../../ot/emulator/package');
  const cfg = DEFAULT_BENCH_TRAIN;
  const spec = benchSpec(cfg);
  const weights = randomModel(spec, 7);
  const rng = new Rng(11);
  // Random tokens: the timing of each phase does not depend on what the text says.
  const support = Array.from({ length: 4 }, () => {
    const n = cfg.batch * cfg.seq;
    const ids = new Int32Array(n);
    const targets = new Int32Array(n);
    for (let i = 0; i < n; i++) ids[i] = Math.floor(rng.uniform() * cfg.vocab);
    for (let i = 0; i < n; i++) targets[i] = (i + 1) % cfg.seq === 0 ? -100 : ids[i + 1]!;
    return { ids, targets, B: cfg.batch, T: cfg.seq };
  });
  const { report } = await buildEmulator(spec, weights, {
    modelId: 'bench-6x256',
    backend: new CpuBackend({ dtype: 'f32' }),
    support,
    method: 'gradot',
    keep: 0.5,
    split: { bottom: 2, top: 2 },
    lambdaAttn: 1,
    lambdaMlp: 1,
  });
  const s = report.seconds;
  const text = [
    `compress (gradot, keep 0.5, 2:2) on llama-family ${cfg.layers}x${cfg.hidden}, support ${support.length} x ${cfg.batch}x${cfg.seq} tokens`,
    `  support pass ${s.support.toFixed(2)} s | SVDs ${s.svd.toFixed(2)} s | scoring+selection ${s.scoring.toFixed(2)} s | ` +
      `compress total ${s.compress.toFixed(2)} s | evaluate ${s.evaluate.toFixed(2)} s | packaging ${s.package.toFixed(2)} s | total ${s.total.toFixed(2)} s`,
  ].join('\n');
  return { json: { seconds: s, params: report.params }, text };
}

async function benchOrt(): Promise<{ json: Record<string, unknown>; text: string } | null> {
  let mod: Record<string, unknown>;
  try {
    // A variable specifier: src/onnx is optional in this build and must not break type-checking without it.
    const specifier = '../../onnx/bench';
    mod = (await import(/* @vite-ignore */ specifier)) as Record<string, unknown>;
  } catch {
    return null;
  }
  const run = mod.benchEvalThroughput as undefined | ((o?: unknown) => Promise<{ json: Record<string, unknown>; text: string }>);
  return run ? run() : null;
}

export const command: Command = {
  name: 'bench',
  summary: 'engine throughput as ratios against references run in the same process',
  usage:
    'gradot bench [--only matmul,train,compress,ort,cpu,svd,scale] [--sizes 128,256,512] [--threads N] [--repeat R] [--models gpt2,opt-125m] [--keep 0.5] ' +
    BACKEND_USAGE +
    ' (train) [--json]',
  async run(argv, ctx): Promise<CommandResult> {
    const { options } = parseCommandArgs(argv, {
      only: { type: 'string' },
      sizes: { type: 'string', default: '128,256,512' },
      repeat: { type: 'string', default: '1' },
      models: { type: 'string' },
      keep: { type: 'number' },
      ...BACKEND_OPTIONS,
    });
    const only = options.only ? String(options.only).split(',') : [...DEFAULT_SECTIONS];
    for (const s of only)
      if (!(SECTIONS as readonly string[]).includes(s)) throw new Error(`unknown bench section '${s}' (one of ${SECTIONS.join(', ')})`);
    const want = (s: Section) => only.includes(s);
    const json: Record<string, unknown> = {};
    const text: string[] = [];
    if (want('matmul')) {
      const sizes = String(options.sizes).split(',').map(Number);
      const c = await compareMatmulWithTorch(sizes);
      json.matmul = c;
      text.push(formatMatmulComparison(c));
    }
    if (want('train')) {
      // --backend applies here: our training step on WebGPU (Dawn) beside torch on the CPU.
      const be = await openCliBackend(options, ctx, () => new CpuBackend({ dtype: 'f32' }));
      const c = await compareTrainStep({}, be.backend).finally(() => be.close());
      json.train = { ...c, backend: be.run };
      text.push(formatTrainBench(c));
    }
    if (want('compress')) {
      const c = await benchCompress();
      json.compress = c.json;
      text.push(c.text);
    }
    if (want('ort')) {
      const c = await benchOrt();
      if (c) {
        json.ort = c.json;
        text.push(c.text);
      } else {
        json.ort = { skipped: 'src/onnx/bench is not built yet' };
        text.push('ort: skipped (src/onnx/bench is not built yet)');
      }
    }
    if (want('cpu')) {
      const { benchCpu, formatCpuBench } = await import('../../engine/cpu/bench-cpu');
      const repeat = Number(options.repeat);
      if (!Number.isInteger(repeat) || repeat < 1) throw new Error(`--repeat expects a positive integer (got '${String(options.repeat)}')`);
      const c = await benchCpu({
        repeat,
        ...(options.sizes !== '128,256,512' ? { sizes: String(options.sizes).split(',').map(Number) } : {}),
      });
      json.cpu = c;
      text.push(formatCpuBench(c));
    }
    if (want('svd')) {
      const { benchSvd, formatSvdBench } = await import('../../engine/linalg/svd.bench');
      const c = await benchSvd();
      json.svd = c;
      text.push(formatSvdBench(c));
    }
    if (want('scale')) {
      const { benchScale } = await import('../bench-scale');
      const c = await benchScale({
        ...(options.models ? { models: String(options.models).split(',') } : {}),
        ...(options.keep !== undefined ? { keep: options.keep as number } : {}),
      });
      json.scale = c.json;
      text.push(c.text);
    }
    return { json, text: text.join('\n\n') };
  },
};

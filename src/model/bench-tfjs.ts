/**
 * The TensorFlow.js peer of the training-step benchmark: the same LLaMA-family decoder as bench-train.ts
 * (same config, same random weights, same token ids and targets), trained for the same steps with
 * @tensorflow/tfjs-core on @tensorflow/tfjs-backend-wasm (SIMD; threads where the platform gives them — the
 * browser's threaded build needs cross-origin isolation, Node's build runs one thread). TF.js is the npm
 * library that trains in a browser today, so it is the peer a user would otherwise reach for.
 *
 * Both sides start from identical weights, so the first step's loss must agree (printed as a check that the
 * peer computes the same model, not a cheaper one).
 */

import type { BenchTrainConfig, BenchTrainResult } from './bench-train';
import { DEFAULT_BENCH_TRAIN, benchSpec } from './bench-train';
import { randomModel } from './random-model';
import { Rng } from '../engine/random';

export type TfjsBenchOutcome =
  | { ok: true; result: BenchTrainResult & { backend: string; threads: number; simd: boolean; firstLoss: number } }
  | { ok: false; skipped: string };

type Tf = typeof import('@tensorflow/tfjs-core');

type TfWasm = typeof import('@tensorflow/tfjs-backend-wasm');

async function loadTf(threads: number): Promise<{ tf: Tf; threads: number; simd: boolean }> {
  let tf: Tf;
  let wasm: TfWasm;
  const proc = (globalThis as { process?: { versions?: { node?: string }; env?: Record<string, string | undefined> } }).process;
  // Plain Node (not Vitest): go straight to require(). A failed ES import first would leave tfjs-core's ES
  // files in Node's module cache, and a later require() of them hits the same extension-less imports.
  const plainNode = typeof proc?.versions?.node === 'string' && !proc.env?.VITEST;
  try {
    if (plainNode) throw new Error('plain Node: CommonJS path');
    // Bundlers (Vite in the page, Vitest with the package inlined) resolve tfjs-core's ES build.
    tf = await import('@tensorflow/tfjs-core');
    await import('@tensorflow/tfjs-core/dist/register_all_gradients');
    wasm = await import('@tensorflow/tfjs-backend-wasm');
  } catch (e) {
    if (typeof proc?.versions?.node !== 'string') throw e;
    // Plain Node (the CLI under tsx): tfjs-core's ES build uses extension-less imports Node's ESM loader
    // rejects, and its CommonJS bundle has no gradients. Registries are global, so the gradients land in
    // the same engine.
    const name = 'node:module';
    const { createRequire } = (await import(/* @vite-ignore */ name)) as typeof import('node:module');
    const req = createRequire(import.meta.url);
    tf = req('@tensorflow/tfjs-core') as Tf;
    // The union package's CommonJS bundle registers every gradient into that same tfjs-core (it requires
    // it); tfjs-core's own register_all_gradients is ES-only, which Node's require(esm) cannot resolve.
    req('@tensorflow/tfjs');
    wasm = req('@tensorflow/tfjs-backend-wasm') as TfWasm;
  }
  wasm.setThreadsCount(threads);
  if (!(await tf.setBackend('wasm'))) throw new Error('the TF.js wasm backend did not initialise');
  await tf.ready();
  return { tf, threads: wasm.getThreadsCount(), simd: tf.env().getBool('WASM_HAS_SIMD_SUPPORT') as boolean };
}

/** Same tokens as benchTrainStep (Rng(0): ids then targets). */
function tokens(c: BenchTrainConfig): { ids: Int32Array; targets: Int32Array } {
  const rng = new Rng(0);
  const n = c.batch * c.seq;
  const ids = Int32Array.from({ length: n }, () => rng.int(c.vocab));
  const targets = Int32Array.from({ length: n }, () => rng.int(c.vocab));
  return { ids, targets };
}

export async function benchTfjsTrainStep(cfg: Partial<BenchTrainConfig> = {}, threads = 1): Promise<TfjsBenchOutcome> {
  const c = { ...DEFAULT_BENCH_TRAIN, ...cfg };
  let env: { tf: Tf; threads: number; simd: boolean };
  try {
    env = await loadTf(threads);
  } catch (e) {
    return { ok: false, skipped: `TensorFlow.js wasm backend unavailable: ${(e as Error).message}` };
  }
  const { tf } = env;
  const spec = benchSpec(c);
  const weights = randomModel(spec, 0);
  const vars = new Map<string, import('@tensorflow/tfjs-core').Variable>();
  for (const [name, t] of weights) vars.set(name, tf.variable(tf.tensor(t.data, t.shape), true, name));
  const W = (name: string) => {
    const v = vars.get(name);
    if (!v) throw new Error(`tfjs peer: weight ${name} missing`);
    return v;
  };
  const { B, T } = { B: c.batch, T: c.seq };
  const d = c.hidden;
  const H = c.heads;
  const Hkv = c.kvHeads;
  const D = d / H;
  const eps = spec.normEps;
  // RoPE tables (rotate_half convention), [T, D].
  const half = D / 2;
  const cosA = new Float32Array(T * D);
  const sinA = new Float32Array(T * D);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const ang = t * Math.pow(spec.ropeTheta, (-2 * i) / D);
      cosA[t * D + i] = cosA[t * D + i + half] = Math.cos(ang);
      sinA[t * D + i] = sinA[t * D + i + half] = Math.sin(ang);
    }
  }
  const cos = tf.tensor(cosA, [1, T, 1, D]);
  const sin = tf.tensor(sinA, [1, T, 1, D]);
  const maskA = new Float32Array(T * T);
  for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) maskA[i * T + j] = -1e9;
  const mask = tf.tensor(maskA, [1, 1, T, T]);
  const { ids, targets } = tokens(c);
  const idsOnehot = tf.cast(tf.oneHot(tf.tensor1d(ids, 'int32'), c.vocab), 'float32');
  const onehot = tf.oneHot(tf.tensor1d(targets, 'int32'), c.vocab);

  const rms = (x: import('@tensorflow/tfjs-core').Tensor, w: import('@tensorflow/tfjs-core').Tensor) =>
    tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), eps))), w);
  const linear = (x: import('@tensorflow/tfjs-core').Tensor, w: import('@tensorflow/tfjs-core').Tensor) => tf.matMul(x, w, false, true);
  const rope = (x: import('@tensorflow/tfjs-core').Tensor) => {
    const [x1, x2] = tf.split(x, 2, -1);
    return tf.add(tf.mul(x, cos), tf.mul(tf.concat([tf.neg(x2!), x1!], -1), sin));
  };
  const lossFn = () => {
    // The wasm backend has no UnsortedSegmentSum (gather's gradient): the lookup is a one-hot product,
    // ~1% of the step's flops at this vocabulary.
    let x = tf.matMul(idsOnehot, W('embed.weight'));
    for (let l = 0; l < c.layers; l++) {
      const p = `layers.${l}.`;
      const h = rms(x, W(p + 'ln1.weight'));
      let q = tf.reshape(linear(h, W(p + 'attn.q.weight')), [B, T, H, D]);
      let k = tf.reshape(linear(h, W(p + 'attn.k.weight')), [B, T, Hkv, D]);
      let v = tf.reshape(linear(h, W(p + 'attn.v.weight')), [B, T, Hkv, D]);
      q = tf.transpose(rope(q), [0, 2, 1, 3]);
      k = tf.transpose(rope(k), [0, 2, 1, 3]);
      v = tf.transpose(v, [0, 2, 1, 3]);
      if (Hkv !== H) {
        // Grouped-query heads: kv head h serves query heads h*rep .. h*rep+rep-1 (split/concat have
        // gradients on every backend; rank-5 tile does not).
        const rep = H / Hkv;
        const repeat = (t: import('@tensorflow/tfjs-core').Tensor) =>
          tf.concat(
            tf.split(t, Hkv, 1).flatMap((p) => new Array(rep).fill(p)),
            1,
          );
        k = repeat(k);
        v = repeat(v);
      }
      const s = tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(D)), mask);
      const o = tf.reshape(tf.transpose(tf.matMul(tf.softmax(s), v), [0, 2, 1, 3]), [B * T, d]);
      x = tf.add(x, linear(o, W(p + 'attn.o.weight')));
      const h2 = rms(x, W(p + 'ln2.weight'));
      const g = linear(h2, W(p + 'mlp.gate.weight'));
      const u = linear(h2, W(p + 'mlp.up.weight'));
      x = tf.add(x, linear(tf.mul(tf.mul(g, tf.sigmoid(g)), u), W(p + 'mlp.down.weight')));
    }
    const logits = linear(rms(x, W('norm.weight')), W('lm_head.weight'));
    return tf.losses.softmaxCrossEntropy(onehot, logits) as import('@tensorflow/tfjs-core').Scalar;
  };
  const opt = tf.train.adam(1e-3);
  const varList = [...vars.values()];
  let loss = NaN;
  let firstLoss = NaN;
  const step = async () => {
    const l = opt.minimize(lossFn, true, varList);
    loss = (await l!.data())[0]!;
    l!.dispose();
  };
  try {
    for (let i = 0; i < c.warmup; i++) {
      await step();
      if (i === 0) firstLoss = loss;
    }
    const cpu = () => {
      const p = (globalThis as { process?: { cpuUsage?: () => { user: number; system: number } } }).process;
      if (!p?.cpuUsage) return null;
      const u = p.cpuUsage();
      return (u.user + u.system) / 1e6;
    };
    const t0 = performance.now();
    const c0 = cpu();
    for (let i = 0; i < c.steps; i++) await step();
    const dt = (performance.now() - t0) / 1000;
    const c1 = cpu();
    const n = B * T;
    let params = 0;
    for (const t of weights.values()) params += t.data.length;
    return {
      ok: true,
      result: {
        impl: `TensorFlow.js ${tf.version_core} wasm${env.simd ? ' (SIMD)' : ''}`,
        backend: 'wasm',
        threads: env.threads,
        simd: env.simd,
        params,
        tokensPerStep: n,
        steps: c.steps,
        secondsPerStep: dt / c.steps,
        tokensPerSecond: (n * c.steps) / dt,
        loss,
        firstLoss,
        cpuSecondsPerStep: c0 === null || c1 === null ? null : (c1 - c0) / c.steps,
      },
    };
  } finally {
    for (const v of varList) v.dispose();
    opt.dispose();
    tf.dispose([cos, sin, mask, idsOnehot, onehot]);
  }
}

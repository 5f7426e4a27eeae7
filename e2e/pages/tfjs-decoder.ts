// The benchmark's peer: the same decoder (LLaMA-style: RMSNorm, RoPE, grouped-query causal attention, SwiGLU
// MLP, untied head; widths from the same HF config) trained with TensorFlow.js, one optimizer step timed
// like ours (forward, loss, backward, Adam; synchronised by reading the loss). Weights are random: speed
// only. Runs on whichever TF.js backend is active (the bench page selects 'webgpu').
//
// TF.js is loaded from its prebuilt browser bundles (`loadTfjs`): its ES modules import CommonJS packages
// that a plain dev server cannot serve, and the bundles are what a web page would ship anyway.
import type * as TF from '@tensorflow/tfjs-core';
import type { Tensor, Tensor2D, Variable } from '@tensorflow/tfjs-core';
import type { TrainBenchRow } from '../../src/engine/webgpu/bench';

type Tf = typeof TF;

function script(src: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const el = document.createElement('script');
    el.src = src;
    el.onload = () => resolve();
    el.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.appendChild(el);
  });
}

/** TF.js + its WebGPU backend from the packages' UMD bundles (they define `window.tf`). */
export async function loadTfjs(): Promise<Tf> {
  const g = globalThis as { tf?: Tf };
  if (!g.tf) {
    const base = new URL('/node_modules/@tensorflow/', location.href).href;
    // The union bundle: tfjs-core's own bundle lacks the gradient registrations training needs.
    await script(`${base}tfjs/dist/tf.min.js`);
    await script(`${base}tfjs-backend-webgpu/dist/tf-backend-webgpu.min.js`);
  }
  if (!g.tf) throw new Error('TF.js bundles loaded but window.tf is missing');
  return g.tf;
}

export interface TfDecoderSpec {
  vocab: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  ffn: number;
  layers: number;
  eps: number;
  ropeTheta: number;
}

/** Widths of an HF LLaMA config.json (the bench's demo model) with `layers` blocks. */
export function tfSpecFromConfig(c: Record<string, unknown>, layers: number): TfDecoderSpec {
  const n = (k: string, d?: number) => {
    const v = c[k] ?? d;
    if (typeof v !== 'number') throw new Error(`config.json: '${k}' missing or not a number`);
    return v;
  };
  const hidden = n('hidden_size');
  const heads = n('num_attention_heads');
  return {
    vocab: n('vocab_size'),
    hidden,
    heads,
    kvHeads: n('num_key_value_heads', heads),
    headDim: n('head_dim', hidden / heads),
    ffn: n('intermediate_size'),
    layers,
    eps: n('rms_norm_eps', 1e-5),
    ropeTheta: n('rope_theta', 10000),
  };
}

function ropeTables(tf: Tf, T: number, D: number, theta: number): { cos: Tensor2D; sin: Tensor2D } {
  const half = D / 2;
  const c = new Float32Array(T * D);
  const s = new Float32Array(T * D);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const a = t * Math.pow(theta, (-2 * i) / D);
      c[t * D + i] = c[t * D + i + half] = Math.cos(a);
      s[t * D + i] = s[t * D + i + half] = Math.sin(a);
    }
  }
  return { cos: tf.tensor2d(c, [T, D]), sin: tf.tensor2d(s, [T, D]) };
}

export async function benchTfjsTrainStep(
  tf: Tf,
  spec: TfDecoderSpec,
  B: number,
  T: number,
  steps: number,
  seed = 3,
): Promise<TrainBenchRow> {
  const { vocab, hidden: d, heads: H, kvHeads: Hkv, headDim: D, ffn } = spec;
  let s = seed;
  const w = (shape: number[]) => tf.variable(tf.randomNormal(shape, 0, 0.02, 'float32', s++));
  const ones = (n: number) => tf.variable(tf.ones([n]));
  const emb = w([vocab, d]);
  const head = w([d, vocab]);
  const normF = ones(d);
  const layers = Array.from({ length: spec.layers }, () => ({
    ln1: ones(d),
    q: w([d, H * D]),
    k: w([d, Hkv * D]),
    v: w([d, Hkv * D]),
    o: w([H * D, d]),
    ln2: ones(d),
    gate: w([d, ffn]),
    up: w([d, ffn]),
    down: w([ffn, d]),
  }));
  const vars: Variable[] = [emb, head, normF, ...layers.flatMap((l) => Object.values(l))];
  const params = vars.reduce((a, v) => a + v.size, 0);
  const { cos, sin } = ropeTables(tf, T, D, spec.ropeTheta);
  const mask = tf.tensor2d(
    Float32Array.from({ length: T * T }, (_, i) => (i % T > Math.floor(i / T) ? -1e9 : 0)),
    [T, T],
  );
  const kvIndex = tf.tensor1d(
    Int32Array.from({ length: H }, (_, h) => Math.floor(h / (H / Hkv))),
    'int32',
  );
  const ids = tf.tensor1d(
    Int32Array.from({ length: B * T }, (_, i) => (i * 7919) % vocab),
    'int32',
  );
  const targets = tf.oneHot(
    tf.tensor1d(
      Int32Array.from({ length: B * T }, (_, i) => (i * 104729 + 1) % vocab),
      'int32',
    ),
    vocab,
  );

  const rms = (x: Tensor2D, g: Variable) => tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), spec.eps))), g) as Tensor2D;
  const heads = (x: Tensor2D, n: number) => tf.transpose(tf.reshape(x, [B, T, n, D]), [0, 2, 1, 3]);
  const rope = (x: Tensor) => {
    const x1 = tf.slice(x, [0, 0, 0, 0], [-1, -1, -1, D / 2]);
    const x2 = tf.slice(x, [0, 0, 0, D / 2], [-1, -1, -1, D / 2]);
    return tf.add(tf.mul(x, cos), tf.mul(tf.concat([tf.neg(x2), x1], 3), sin));
  };
  const loss = (): TF.Scalar => {
    let x = tf.gather(emb, ids) as Tensor2D;
    for (const l of layers) {
      const h = rms(x, l.ln1);
      const q = rope(heads(tf.matMul(h, l.q), H));
      const k = tf.gather(rope(heads(tf.matMul(h, l.k), Hkv)), kvIndex, 1);
      const v = tf.gather(heads(tf.matMul(h, l.v), Hkv), kvIndex, 1);
      const p = tf.softmax(tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(D)), mask));
      const a = tf.reshape(tf.transpose(tf.matMul(p, v), [0, 2, 1, 3]), [B * T, H * D]) as Tensor2D;
      x = tf.add(x, tf.matMul(a, l.o));
      const h2 = rms(x, l.ln2);
      const g = tf.matMul(h2, l.gate);
      x = tf.add(x, tf.matMul(tf.mul(tf.mul(g, tf.sigmoid(g)), tf.matMul(h2, l.up)) as Tensor2D, l.down));
    }
    return tf.losses.softmaxCrossEntropy(targets, tf.matMul(rms(x, normF), head)) as TF.Scalar;
  };
  const opt = tf.train.adam(1e-4);
  let last = NaN;
  const one = async () => {
    const l = opt.minimize(loss, true, vars);
    if (!l) throw new Error('TF.js optimizer returned no loss');
    last = (await l.data())[0]!;
    l.dispose();
  };
  await one();
  const times: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t = performance.now();
    await one();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  const ms = times[Math.floor(times.length / 2)]!;
  opt.dispose();
  tf.dispose([...vars, cos, sin, mask, kvIndex, ids, targets]);
  return {
    backend: `tfjs-${tf.getBackend()}`,
    layers: spec.layers,
    params,
    tokens: B * T,
    msPerStep: ms,
    tokensPerSec: (B * T * 1000) / ms,
    loss: last,
  };
}

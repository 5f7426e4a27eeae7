/**
 * One whole training step of small models on WebGPU vs the CPU reference: same weights, same batch;
 * compares the loss, every parameter gradient, the parameters after one AdamW step and the loss after it.
 * Covers what per-kernel checks cannot: the autograd tape, ops.ts glue and the decoder driving the GPU.
 * Families: gpt2 (LayerNorm, GELU-tanh, learned positions, tied head) and llama (RMSNorm, SiLU-gated MLP,
 * RoPE, grouped-query attention).
 */
import { CpuBackend } from '../cpu/backend';
import { AdamW } from '../optim';
import { Rng } from '../random';
import { backward, type Tensor } from '../tensor';
import { decoderFromWeights } from '../../model/decoder';
import { randomModel, smallSpec, type SmallFamily } from '../../model/random-model';
import type { Backend } from '../backend';
import { relErrors, type CaseResult } from './suite';
import { createWebGpuBackend, type WebGpuBackend } from './backend';

interface StepOut {
  loss: number;
  loss2: number;
  grads: Map<string, Float32Array | Float64Array>;
  params: Map<string, Float32Array | Float64Array>;
}

async function step(be: Backend, family: SmallFamily, B: number, T: number): Promise<StepOut> {
  const spec = smallSpec(family, { maxPositions: T });
  const dec = decoderFromWeights(be, spec, randomModel(spec, 7, { normJitter: 0.1, biasStd: 0.02 }), { requiresGrad: true });
  const rng = new Rng(11);
  const ids = Int32Array.from({ length: B * T }, () => rng.int(spec.vocabSize));
  const targets = Int32Array.from({ length: B * T }, (_, i) => (i % 7 === 3 ? -100 : rng.int(spec.vocabSize)));
  const opt = new AdamW(dec.namedParams(), { lr: 1e-2, weightDecay: 0.01 });
  const l = dec.loss(ids, targets, B, T);
  const loss = (await l.read())[0];
  backward(l);
  const grads = new Map<string, Float32Array | Float64Array>();
  for (const [name, t] of dec.params) {
    if (!t.grad) throw new Error(`no gradient for ${name}`);
    grads.set(name, await (t.grad as Tensor).read());
  }
  opt.step();
  const params = new Map<string, Float32Array | Float64Array>();
  for (const [name, t] of dec.params) params.set(name, await t.read());
  dec.zeroGrad();
  const loss2 = (await dec.loss(ids, targets, B, T).read())[0];
  return { loss: loss!, loss2: loss2!, grads, params };
}

/**
 * Steady-state training on the GPU must not allocate: after the first steps every buffer comes from the
 * pool and every pipeline from the cache. Forward activations are left to the garbage collector by the
 * autograd tape; the backend's FinalizationRegistry returns their buffers to the pool, so the check runs
 * a GC between steps when the browser exposes one (the e2e launcher passes --expose-gc).
 */
async function allocationChurn(gpuApi: GPU | undefined): Promise<CaseResult> {
  const t0 = performance.now();
  const gc = (globalThis as { gc?: () => void }).gc;
  const gpu = await createWebGpuBackend({ gpu: gpuApi });
  const spec = smallSpec('llama', { maxPositions: 16 });
  const dec = decoderFromWeights(gpu, spec, randomModel(spec, 9), { requiresGrad: true });
  const rng = new Rng(2);
  const ids = Int32Array.from({ length: 32 }, () => rng.int(spec.vocabSize));
  const targets = Int32Array.from({ length: 32 }, () => rng.int(spec.vocabSize));
  const opt = new AdamW(dec.namedParams(), { lr: 1e-3 });
  const counts: [number, number][] = [];
  const steps = 6;
  for (let i = 0; i < steps; i++) {
    dec.zeroGrad();
    const l = dec.loss(ids, targets, 2, 16);
    backward(l);
    opt.step();
    await l.read();
    l.free();
    if (gc) {
      gc();
      // Finalization callbacks run as separate tasks after the collection.
      await new Promise((r) => setTimeout(r, 10));
    }
    counts.push([gpu.stats.buffersCreated, gpu.stats.pipelinesCompiled]);
  }
  dec.free();
  const reclaimed = gpu.stats.reclaimedByGc;
  gpu.destroy();
  const newBuffers = counts[steps - 1]![0] - counts[steps - 3]![0];
  const newPipelines = counts[steps - 1]![1] - counts[steps - 3]![1];
  const ok = newPipelines === 0 && (newBuffers === 0 || !gc);
  const detail = `buffers created after each step ${counts.map((c) => c[0]).join(',')}; ${reclaimed} reclaimed from GC'd handles`;
  return {
    kernel: 'train step llama: no allocation churn',
    shape: `last 2 of ${steps} steps${gc ? '' : ' (no gc(): buffers unchecked)'}`,
    ok,
    maxRel: 0,
    normRel: 0,
    ...(ok ? {} : { error: `${newBuffers} new buffers, ${newPipelines} new pipelines in steady state; ${detail}` }),
    ms: performance.now() - t0,
  };
}

export async function runTrainStepCheck(gpu: WebGpuBackend, tol = 1e-4): Promise<CaseResult[]> {
  const out: CaseResult[] = [await allocationChurn(gpu.gpuApi)];
  for (const family of ['gpt2', 'llama'] as const) {
    const t0 = performance.now();
    const B = 2;
    const T = 16;
    const shape = `2 layers d32 B${B} T${T}`;
    try {
      const c = await step(new CpuBackend({ dtype: 'f32' }), family, B, T);
      const g = await step(gpu, family, B, T);
      const lossErr = relErrors([g.loss, g.loss2], [c.loss, c.loss2]);
      // Some gradients are zero by symmetry (a key bias shifts every score of a row equally, so softmax
      // ignores it): both backends then hold pure rounding noise. Errors are therefore measured against
      // max(||g_cpu||, 1e-3 * global gradient norm), and such parameters are left out of the post-AdamW
      // comparison, since Adam normalises that noise into full-size steps.
      let global = 0;
      for (const cg of c.grads.values()) for (const v of cg) global += v * v;
      global = Math.sqrt(global);
      let gradWorst = 0;
      let gradName = '';
      let gradElem = 0;
      const degenerate = new Set<string>();
      for (const [name, cg] of c.grads) {
        const gg = g.grads.get(name)!;
        let num = 0;
        let den = 0;
        for (let i = 0; i < cg.length; i++) {
          num += (gg[i]! - cg[i]!) ** 2;
          den += cg[i]! * cg[i]!;
        }
        if (Math.sqrt(den) < 1e-4 * global) degenerate.add(name);
        const e = Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-3 * global);
        gradElem = Math.max(gradElem, relErrors(gg, cg).maxRel);
        if (e >= gradWorst) {
          gradWorst = e;
          gradName = name;
        }
      }
      let paramWorst = 0;
      for (const [name, cp] of c.params) {
        if (!degenerate.has(name)) paramWorst = Math.max(paramWorst, relErrors(g.params.get(name)!, cp).normRel);
      }
      const ms = performance.now() - t0;
      out.push({
        kernel: `train step ${family}: loss before/after AdamW`,
        shape,
        ok: lossErr.maxRel < tol,
        maxRel: lossErr.maxRel,
        normRel: lossErr.normRel,
        ms,
      });
      out.push({
        kernel: `train step ${family}: gradients (${c.grads.size})`,
        shape,
        ok: gradWorst < tol,
        maxRel: gradElem,
        normRel: gradWorst,
        worst: gradName,
        ms: 0,
      });
      out.push({
        kernel: `train step ${family}: params after AdamW`,
        shape: `${shape}${degenerate.size ? ` (skipped zero-grad: ${[...degenerate].join(', ')})` : ''}`,
        ok: paramWorst < tol,
        maxRel: paramWorst,
        normRel: paramWorst,
        ms: 0,
      });
    } catch (e) {
      out.push({
        kernel: `train step ${family}`,
        shape,
        ok: false,
        maxRel: Infinity,
        normRel: Infinity,
        error: e instanceof Error ? `${e.message}\n${e.stack}` : String(e),
        ms: performance.now() - t0,
      });
    }
  }
  return out;
}

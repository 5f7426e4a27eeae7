import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../../engine/cpu/backend';
import { decoderFromWeights } from '../../model/decoder';
import { compressModel } from '../emulator/compress';
import { MemorySource } from '../../model/source';
import { IGNORE_INDEX } from '../../data/types';
import type { ChoiceExample } from '../../data/batch';
import { rowScoresFromLogits } from './metrics';
import { evaluate } from './evaluate';
import { ADAPTER_JSON, PEFT_CONFIG, PEFT_WEIGHTS, exportAdapter, loadAdapter, loadPeftAdapter } from './export';
import { applyAdapter, plugIn } from './plugin';
import { adapterBlocks } from '../emulator/split';
import { tune, type TrainedAdapter } from './tune';
import { cpuDecoder, synthExamples, tinyModel } from './test-helpers';
import { parseSafetensors } from '../../model/safetensors';
import { toHFWeights } from '../../model/hf';
import type { ModelSpec } from '../../model/spec';
import type { WeightMap } from '../../model/weights';

const split = { bottom: 1, top: 1 };
const ids = Int32Array.from({ length: 16 }, (_, i) => (i * 5 + 1) % 32);

async function logitsOf(spec: ModelSpec, weights: WeightMap): Promise<Float32Array> {
  const dec = decoderFromWeights(new CpuBackend(), spec, weights);
  const y = dec.forward(ids, 2, 8);
  return (await y.read()) as Float32Array;
}
const same = (a: Float32Array, b: Float32Array): boolean => Buffer.from(a.buffer).equals(Buffer.from(b.buffer));

function untouched(emuSpec: ModelSpec, emuWeights: WeightMap): TrainedAdapter {
  const blocks = adapterBlocks(emuSpec, split);
  const weights: WeightMap = new Map();
  for (const [k, t] of emuWeights) if (blocks.some((b) => k.startsWith(`layers.${b}.`))) weights.set(k, t);
  return {
    method: 'adapter',
    split,
    blocks,
    blockSources: blocks.map((b) => emuSpec.layers[b]!.source),
    numLayers: emuSpec.layers.length,
    weights,
  };
}

describe('plug-in', () => {
  for (const method of ['drop', 'svd'] as const) {
    it(`untouched adapters from a ${method} emulator reproduce the full model's logits exactly`, async () => {
      const full = tinyModel('llama', 5);
      const emu = compressModel(full.spec, full.weights, { method, keep: 0.5, split });
      expect(emu.spec.layers.length === 5 && method === 'drop').toBe(false);
      const plugged = await plugIn(full, untouched(emu.spec, emu.weights));
      expect(same(await logitsOf(plugged.spec, plugged.weights), await logitsOf(full.spec, full.weights))).toBe(true);
      // and the emulator differs from the full model (it is a weaker copy)
      const el = await logitsOf(emu.spec, emu.weights);
      expect(same(el, await logitsOf(full.spec, full.weights))).toBe(false);
    });
  }

  it('adapters tuned on an emulator land in the full model at the matching blocks', async () => {
    const full = tinyModel('gpt2', 5);
    const emu = compressModel(full.spec, full.weights, { method: 'drop', keep: 0.34, split });
    const dec = decoderFromWeights(new CpuBackend(), emu.spec, emu.weights);
    const r = await tune(dec, { train: synthExamples(8, 1) }, { split, lr: 1e-2, batchSize: 4, maxSteps: 2 });
    const plugged = await plugIn(full, r.adapter);
    const L = full.spec.layers.length;
    const Le = emu.spec.layers.length;
    expect(plugged.weights.get(`layers.${L - 1}.mlp.up.weight`)!.data).toEqual(
      r.adapter.weights.get(`layers.${Le - 1}.mlp.up.weight`)!.data,
    );
    expect(plugged.weights.get('layers.2.mlp.up.weight')).toBe(full.weights.get('layers.2.mlp.up.weight'));
    expect(plugged.replaced.every((n) => n.startsWith('layers.0.') || n.startsWith(`layers.${L - 1}.`))).toBe(true);
  });

  it('LoRA: merged plug-in on a none emulator reproduces the tuned LoRA forward exactly', async () => {
    const full = tinyModel('llama', 4);
    const emu = compressModel(full.spec, full.weights, { method: 'none', keep: 1, split });
    const dec = decoderFromWeights(new CpuBackend(), emu.spec, emu.weights);
    const r = await tune(
      dec,
      { train: synthExamples(8, 2) },
      {
        split,
        lr: 2e-2,
        batchSize: 4,
        maxSteps: 3,
        method: 'lora',
        lora: { r: 2, alpha: 4, targets: ['q', 'v', 'down'] },
      },
    );
    const plugged = await plugIn(full, r.adapter);
    // Tuned emulator with the LoRA applied (merged the same way) gives the same logits.
    await applyAdapter(dec, r.adapter);
    const y = dec.forward(ids, 2, 8);
    expect(same((await y.read()) as Float32Array, await logitsOf(plugged.spec, plugged.weights))).toBe(true);
    expect(same(await logitsOf(plugged.spec, plugged.weights), await logitsOf(full.spec, full.weights))).toBe(false);
  });
});

describe('export', () => {
  it('adapter.safetensors uses the base model HF names of the adapter blocks only, and loads back', async () => {
    const full = tinyModel('opt', 5);
    const emu = compressModel(full.spec, full.weights, { method: 'drop', keep: 0.5, split });
    const dec = decoderFromWeights(new CpuBackend(), emu.spec, emu.weights);
    const r = await tune(dec, { train: synthExamples(8, 1) }, { split, lr: 1e-2, batchSize: 4, maxSteps: 1 });
    const files = await exportAdapter(r.adapter, { spec: full.spec, weights: full.weights, modelId: 'tiny-opt' });
    expect([...files.keys()].pop()).toBe(ADAPTER_JSON);
    const { tensors } = parseSafetensors(files.get('adapter.safetensors')!);
    const names = [...tensors.keys()];
    expect(names.every((n) => /^model\.decoder\.layers\.(0|4)\./.test(n))).toBe(true);
    expect(names).toContain('model.decoder.layers.4.fc1.weight');
    // Loads onto the emulator (source-index mapping) and onto the full model.
    const src = new MemorySource(files);
    const onFull = await loadAdapter(src, full.spec);
    const a = await plugIn(full, onFull.adapter);
    const b = await plugIn(full, r.adapter);
    for (const [k, t] of b.weights) expect(same(a.weights.get(k)!.data, t.data), k).toBe(true);
    const onEmu = await loadAdapter(src, emu.spec);
    expect(onEmu.adapter.blocks).toEqual(adapterBlocks(emu.spec, split));
  });

  it('exporting against the emulator (data owner) gives the same files as against the full model', async () => {
    for (const method of ['adapter', 'lora'] as const) {
      const full = tinyModel('gpt2', 5);
      const emu = compressModel(full.spec, full.weights, { method: 'drop', keep: 0.34, split });
      const dec = decoderFromWeights(new CpuBackend(), emu.spec, emu.weights);
      const r = await tune(
        dec,
        { train: synthExamples(8, 1) },
        {
          split,
          lr: 1e-2,
          batchSize: 4,
          maxSteps: 2,
          method,
          lora: { r: 2, alpha: 4, targets: ['q', 'k', 'v', 'up'] },
        },
      );
      const a = await exportAdapter(r.adapter, { spec: full.spec, weights: full.weights, modelId: 'm' });
      const b = await exportAdapter(r.adapter, { spec: emu.spec, weights: emu.weights, modelId: 'm', numLayers: 5 });
      expect([...a.keys()]).toEqual([...b.keys()]);
      for (const [k, v] of a) expect(Buffer.from(v).equals(Buffer.from(b.get(k)!)), `${method} ${k}`).toBe(true);
    }
  });

  for (const fam of ['llama', 'gpt2', 'opt'] as const) {
    it(`LoRA PEFT export (${fam}) has exactly the keys and shapes PEFT builds for its config`, async () => {
      const full = tinyModel(fam, 4);
      const emu = compressModel(full.spec, full.weights, { method: 'svd', keep: 0.5, split });
      const dec = decoderFromWeights(new CpuBackend(), emu.spec, emu.weights);
      const targets = fam === 'gpt2' ? ['q', 'k', 'v', 'o', 'down'] : ['q', 'v', 'o', 'up'];
      const r = await tune(
        dec,
        { train: synthExamples(8, 1) },
        {
          split,
          lr: 1e-2,
          batchSize: 4,
          maxSteps: 2,
          method: 'lora',
          lora: { r: 3, alpha: 6, targets: targets as never },
        },
      );
      const files = await exportAdapter(r.adapter, { spec: full.spec, weights: full.weights, modelId: `tiny-${fam}` });
      const cfg = JSON.parse(new TextDecoder().decode(files.get(PEFT_CONFIG)!));
      expect(cfg).toMatchObject({
        peft_type: 'LORA',
        task_type: 'CAUSAL_LM',
        r: 3,
        lora_alpha: 6,
        lora_dropout: 0,
        bias: 'none',
        layers_to_transform: [0, 3],
        fan_in_fan_out: fam === 'gpt2',
      });
      const { tensors } = parseSafetensors(files.get(PEFT_WEIGHTS)!);
      // PEFT's rule: every base-model Linear/Conv1D whose name ends with ".<target>" in a transformed layer
      // gets lora_A [r, in] and lora_B [out, r]; keys are "base_model.model.<module>.lora_{A,B}.weight".
      const expected = new Map<string, number[]>();
      for (const [name, t] of toHFWeights(full.spec, full.weights)) {
        if (!name.endsWith('.weight') || t.shape.length !== 2) continue;
        const module = name.slice(0, -'.weight'.length);
        if (!cfg.target_modules.some((tm: string) => module === tm || module.endsWith(`.${tm}`))) continue;
        const layer = new RegExp(`\\.${cfg.layers_pattern}\\.(\\d+)\\.`).exec(module);
        if (!layer || !cfg.layers_to_transform.includes(Number(layer[1]))) continue;
        const [out, inn] = fam === 'gpt2' ? [t.shape[1]!, t.shape[0]!] : [t.shape[0]!, t.shape[1]!];
        expected.set(`base_model.model.${module}.lora_A.weight`, [3, inn]);
        expected.set(`base_model.model.${module}.lora_B.weight`, [out, 3]);
      }
      expect(expected.size).toBeGreaterThan(0);
      expect(new Set(tensors.keys())).toEqual(new Set(expected.keys()));
      for (const [k, s] of expected) expect(tensors.get(k)!.shape, k).toEqual(s);
      if (fam === 'llama') expect(tensors.has('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')).toBe(true);
      if (fam === 'gpt2') expect(cfg.target_modules).toEqual(['attn.c_proj', 'c_attn', 'mlp.c_proj']);
      // Reading the PEFT files back and merging gives the same full model as adapter.safetensors.
      const peft = await loadPeftAdapter(new MemorySource(files), full.spec, split);
      const viaPeft = await plugIn(full, peft);
      const viaDense = await plugIn(full, (await loadAdapter(new MemorySource(files), full.spec)).adapter);
      for (const [k, t] of viaDense.weights) expect(same(viaPeft.weights.get(k)!.data, t.data), k).toBe(true);
    });
  }
});

describe('evaluate', () => {
  it('acc and acc_norm match a hand computation from per-choice log-likelihoods', async () => {
    const { spec, weights } = tinyModel('llama', 2);
    const dec = cpuDecoder(spec, weights);
    // Two records, choices of different lengths (chars) so acc_norm can differ from acc.
    const mk = (example: number, choice: number, label: number, ctx: number[], cont: number[], chars: number): ChoiceExample => {
      const full = [...ctx, ...cont];
      const ids2 = full.slice(0, -1);
      const targets = full.slice(1).map((t, k) => (k + 1 >= ctx.length ? t : IGNORE_INDEX));
      return { ids: ids2, targets, line: example + 1, example, choice, label, span: [ctx.length - 1, ids2.length], chars };
    };
    const ex = [
      mk(0, 0, 1, [3, 4, 5], [6], 1),
      mk(0, 1, 1, [3, 4, 5], [7, 8, 9], 9),
      mk(1, 0, 0, [10, 11], [12, 13], 2),
      mk(1, 1, 0, [10, 11], [14], 5),
      mk(1, 2, 0, [10, 11], [15, 16, 17, 18], 3),
    ];
    // Reference: each sequence alone (B=1, no padding), f64 log-softmax.
    const ll: number[] = [];
    for (const e of ex) {
      const y = dec.forward(Int32Array.from(e.ids), 1, e.ids.length);
      ll.push(rowScoresFromLogits(await y.read(), e.targets, 1, e.ids.length, spec.vocabSize).sumLogProb[0]!);
    }
    const argmax = (xs: number[]): number => xs.indexOf(Math.max(...xs));
    const acc = ((argmax([ll[0]!, ll[1]!]) === 1 ? 1 : 0) + (argmax([ll[2]!, ll[3]!, ll[4]!]) === 0 ? 1 : 0)) / 2;
    const accNorm = ((argmax([ll[0]! / 1, ll[1]! / 9]) === 1 ? 1 : 0) + (argmax([ll[2]! / 2, ll[3]! / 5, ll[4]! / 3]) === 0 ? 1 : 0)) / 2;
    const m = await evaluate(dec, { kind: 'mc', file: 't.jsonl', examples: ex }, { batchSize: 3 });
    expect(m.n).toBe(2);
    expect(m.acc).toBe(acc);
    expect(m.accNorm).toBe(accNorm);
    // Per-item results in example order, the material for a paired Δ.
    const item = (ok: boolean): string => (ok ? '1' : '0');
    expect(m.correct).toBe(item(argmax([ll[0]!, ll[1]!]) === 1) + item(argmax([ll[2]!, ll[3]!, ll[4]!]) === 0));
    expect(m.correctNorm).toBe(item(argmax([ll[0]! / 1, ll[1]! / 9]) === 1) + item(argmax([ll[2]! / 2, ll[3]! / 5, ll[4]! / 3]) === 0));
  });

  it('prompt/answer loss and perplexity equal the token-mean NLL, batched or not', async () => {
    const { spec, weights } = tinyModel('gpt2', 2);
    const dec = cpuDecoder(spec, weights);
    const ex = synthExamples(7, 9);
    let s = 0;
    let n = 0;
    for (const e of ex) {
      const y = dec.forward(Int32Array.from(e.ids), 1, e.ids.length);
      const r = rowScoresFromLogits(await y.read(), e.targets, 1, e.ids.length, spec.vocabSize);
      s -= r.sumLogProb[0]!;
      n += r.tokens[0]!;
    }
    const m = await evaluate(dec, { kind: 'sft', file: 'a.jsonl', examples: ex }, { batchSize: 3 });
    expect(m.tokens).toBe(n);
    expect(m.loss!).toBeCloseTo(s / n, 4);
    expect(m.perplexity!).toBeCloseTo(Math.exp(s / n), 3);
    expect(m.exactMatch).toBeGreaterThanOrEqual(0);
  });
});

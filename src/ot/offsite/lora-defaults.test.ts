import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../../engine/cpu/backend';
import { decoderFromWeights } from '../../model/decoder';
import { parseSafetensors } from '../../model/safetensors';
import { compressModel } from '../emulator/compress';
import { PEFT_CONFIG, PEFT_WEIGHTS, exportAdapter } from './export';
import { DEFAULT_LORA, defaultLoraTargets } from './lora';
import { synthExamples, tinyModel } from './test-helpers';
import { tune } from './tune';

const split = { bottom: 1, top: 1 };

describe('LoRA default targets on every family', () => {
  for (const fam of ['gpt2', 'opt', 'llama'] as const) {
    it(`${fam}: the default targets tune and exports to PEFT's layout`, async () => {
      const full = tinyModel(fam, 4);
      const emu = compressModel(full.spec, full.weights, { method: 'svd', keep: 0.5, split });
      const dec = decoderFromWeights(new CpuBackend(), emu.spec, emu.weights);
      const r = await tune(
        dec,
        { train: synthExamples(8, 1) },
        { split, lr: 1e-2, batchSize: 4, maxSteps: 2, method: 'lora', lora: { ...DEFAULT_LORA, targets: defaultLoraTargets(fam) } },
      );
      const files = await exportAdapter(r.adapter, { spec: full.spec, weights: full.weights, modelId: `tiny-${fam}` });
      const cfg = JSON.parse(new TextDecoder().decode(files.get(PEFT_CONFIG)!));
      const { tensors } = parseSafetensors(files.get(PEFT_WEIGHTS)!);
      const d = full.spec.hiddenSize;
      if (fam === 'gpt2') {
        // PEFT's GPT-2 LoRA: target c_attn (Conv1D, fan_in_fan_out), one pair per block, lora_A [r, in], lora_B [3d, r].
        expect(cfg.target_modules).toEqual(['c_attn']);
        expect(cfg.fan_in_fan_out).toBe(true);
        expect([...tensors.keys()].sort()).toEqual([
          'base_model.model.transformer.h.0.attn.c_attn.lora_A.weight',
          'base_model.model.transformer.h.0.attn.c_attn.lora_B.weight',
          'base_model.model.transformer.h.3.attn.c_attn.lora_A.weight',
          'base_model.model.transformer.h.3.attn.c_attn.lora_B.weight',
        ]);
        expect(tensors.get('base_model.model.transformer.h.3.attn.c_attn.lora_A.weight')!.shape).toEqual([8, d]);
        expect(tensors.get('base_model.model.transformer.h.3.attn.c_attn.lora_B.weight')!.shape).toEqual([3 * d, 8]);
      } else {
        expect(cfg.target_modules).toEqual(['q_proj', 'v_proj']);
        expect(cfg.fan_in_fan_out).toBe(false);
        expect(tensors.size).toBe(8);
      }
    });
  }
});

describe('CLI LoRA defaults', () => {
  it('--lora without --lora-targets picks the family default (GPT-2: c_attn)', async () => {
    const { loraFromOptions } = await import('../../cli/commands/ot-shared');
    expect(loraFromOptions({ lora: 8 }, 'gpt2')!.targets).toEqual(['q', 'k', 'v']);
    expect(loraFromOptions({ lora: 8 }, 'opt')!.targets).toEqual(['q', 'v']);
    expect(loraFromOptions({ lora: 8, 'lora-targets': 'q,k,v,o' }, 'gpt2')!.targets).toEqual(['q', 'k', 'v', 'o']);
  });
});

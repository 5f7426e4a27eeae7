import { describe, expect, it } from 'vitest';
import { loraFromOptions } from '../cli/commands/ot-shared';
import { CpuBackend } from '../engine/cpu/backend';
import { decoderFromWeights } from '../model/decoder';
import { defaultLoraTargets, loraModules } from '../ot/offsite/lora';
import { tinyModel } from '../ot/offsite/test-helpers';
import { useUi } from '../store/ui';
import { familyOf, loraDefaultTargets } from './lora-defaults';
import type { PackageSummary } from './studio-api';

const pkg = (family: string | undefined): PackageSummary => ({
  packageId: `pkg-${family}`,
  name: 'p',
  manifest: {},
  sourceModel: 's',
  method: 'gradot',
  ...(family ? { family } : {}),
  files: [],
  tensorCount: 0,
  params: 0,
  warnings: [],
});

describe('default LoRA targets (CLI and studio)', () => {
  it('GPT-2 gets its fused c_attn (q, k, v), the others q and v; model_type names map to their family', () => {
    expect(loraDefaultTargets('gpt2')).toEqual(['q', 'k', 'v']);
    expect(loraDefaultTargets('opt')).toEqual(['q', 'v']);
    expect(loraDefaultTargets('llama')).toEqual(['q', 'v']);
    expect(familyOf('qwen2')).toBe('llama');
    expect(familyOf('GPT2')).toBe('gpt2');
    expect(familyOf(undefined)).toBe('llama');
    for (const f of ['gpt2', 'opt', 'llama'] as const) expect(loraDefaultTargets(f)).toEqual(defaultLoraTargets(f));
  });

  it('the defaults are valid LoRA modules on every family (GPT-2: one c_attn pair per block)', () => {
    for (const fam of ['gpt2', 'opt', 'llama'] as const) {
      const m = tinyModel(fam, 3);
      const dec = decoderFromWeights(new CpuBackend(), m.spec, m.weights);
      const mods = loraModules(dec.spec, [0, 2], { r: 4, alpha: 8, dropout: 0, targets: loraDefaultTargets(fam) });
      expect(mods.map((x) => x.key)).toEqual(
        fam === 'gpt2'
          ? ['layers.0.attn.qkv', 'layers.2.attn.qkv']
          : ['layers.0.attn.q', 'layers.0.attn.v', 'layers.2.attn.q', 'layers.2.attn.v'],
      );
    }
  });

  it('the CLI and the studio store pick the same targets for a package of each family', () => {
    for (const fam of ['gpt2', 'opt', 'llama'] as const) {
      const cli = loraFromOptions({ lora: 8 }, fam)!.targets;
      useUi.getState().setPkg(pkg(fam));
      expect(useUi.getState().tune.loraTargets).toEqual(cli);
    }
    // Opening a GPT-2 package after a LLaMA one replaces the now-invalid q, v.
    useUi.getState().setPkg(pkg('llama'));
    useUi.getState().setPkg(pkg('gpt2'));
    expect(useUi.getState().tune.loraTargets).toEqual(['q', 'k', 'v']);
    useUi.getState().setPkg(null);
    expect(useUi.getState().pkg).toBeNull();
  });
});

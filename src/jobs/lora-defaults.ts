/**
 * Default LoRA targets, one answer for the CLI (`--lora R` without `--lora-targets`) and the studio (the
 * data owner's LoRA checkboxes when a package is opened): q and v for LLaMA/Qwen2/OPT (PEFT's q_proj,
 * v_proj), and for GPT-2 the fused c_attn (q, k and v together), since GPT-2 has no separate q or v module
 * and PEFT targets c_attn there.
 *
 * Type-only imports: the studio's UI bundle imports this without pulling in the numeric engine.
 */
import type { LoraTarget } from '../ot/offsite/lora';
import type { Family } from '../model/spec';

const FAMILIES: readonly Family[] = ['gpt2', 'opt', 'llama'];

/** `family` as a ModelSpec family, or the `model_type` of a config (qwen2, mistral, ... are LLaMA-like). */
export function familyOf(familyOrModelType: string | null | undefined): Family {
  const f = (familyOrModelType ?? '').toLowerCase();
  if ((FAMILIES as readonly string[]).includes(f)) return f as Family;
  if (f.startsWith('gpt2')) return 'gpt2';
  if (f.startsWith('opt')) return 'opt';
  return 'llama';
}

/** The LoRA targets used when none are given, for a family or model_type (unknown: LLaMA's q, v). */
export function loraDefaultTargets(familyOrModelType: string | null | undefined): LoraTarget[] {
  return familyOf(familyOrModelType) === 'gpt2' ? ['q', 'k', 'v'] : ['q', 'v'];
}

/**
 * Default tuning budgets per adapter kind, one answer for the CLI (`gradot tune`, `gradot ot`) and the
 * studio (data owner's form, researcher's grid). Chosen on the VALIDATION split of every bundled task
 * (docs/offsite-tuning.md, "Default budgets"; tools/tune-select.ts): the smallest recipe among the
 * candidates tried with which tuning the uncompressed demo model ("Full FT") beats its zero-shot accuracy
 * (Full ZS) by more than two paired standard errors, so a protocol run at these defaults has something to
 * transfer. `examples` caps the training items the protocol (`ot --limit-train`, the grid's train limit)
 * uses; `gradot tune` trains on the whole file it is given.
 *
 * Plain data, no imports: the studio's UI bundle imports it without pulling in the numeric engine.
 */
export const TUNE_DEFAULTS = {
  /** Whole adapter blocks trainable (OT's setting). */
  full: { lr: 3e-4, epochs: 1, batch: 8, examples: 512 },
  /** LoRA on the adapter blocks' linears (PEFT semantics; alpha = 2 · rank). */
  lora: { lr: 5e-3, epochs: 1, batch: 8, examples: 512, rank: 8 },
} as const;

export type AdapterKind = keyof typeof TUNE_DEFAULTS;

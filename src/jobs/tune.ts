/**
 * The data owner's job: tune the adapter blocks (or LoRA on them) of an emulator (or any model) on a task
 * file, with resumable checkpoints. Two steps, so a bad file fails before any checkpoint or output exists:
 *   prepareTuneData  train (+ valid) file -> examples (multiple choice trains on the correct choice);
 *   tuneJob          examples -> TuneResult (adapter, history), the decoder freed afterwards.
 */
import type { Backend } from '../engine/backend';
import type { TextTokenizer } from '../data/types';
import { decoderFromWeights } from '../model/decoder';
import type { ModelSpec } from '../model/spec';
import type { WeightMap } from '../model/weights';
import type { Split } from '../ot/emulator/split';
import { prepareTraining, type PreparedTraining } from '../ot/offsite/task-data';
import { tune, type TuneOptions, type TuneProgress, type TuneResult } from '../ot/offsite/tune';
import type { CheckpointStore } from '../storage';
import { defaultAddBos, padIdOf, type TaskFile } from './data';
import type { JobControl } from './types';

/** A tuning recipe: what the user chooses (split, padding, storage and controls come from the job). */
export type TuneRecipe = Omit<TuneOptions, 'split' | 'store' | 'signal' | 'pause' | 'onProgress' | 'padId'>;

/** The recipe defaults both front ends state explicitly, so reports record the same recipe. */
export const RECIPE_DEFAULTS = { weightDecay: 0, maxGradNorm: 1, schedule: 'linear' } as const satisfies Partial<TuneRecipe>;

export function withRecipeDefaults(r: TuneRecipe): TuneRecipe {
  return { ...RECIPE_DEFAULTS, ...r };
}

export interface TuneDataOptions {
  contextLength: number;
  /** Held-out share of train when there is no valid file (default 0.05; 0 = no validation). */
  validFraction?: number;
  seed?: number;
  /** Default: the BOS policy of src/jobs/data.ts. */
  addBos?: boolean;
}

export function prepareTuneData(
  files: { train: TaskFile; valid: TaskFile | null },
  tok: TextTokenizer,
  spec: Pick<ModelSpec, 'family'>,
  o: TuneDataOptions,
): PreparedTraining {
  return prepareTraining(files.train, files.valid, tok, {
    contextLength: o.contextLength,
    addBos: o.addBos ?? defaultAddBos(spec, tok),
    validFraction: o.validFraction ?? 0.05,
    seed: o.seed ?? 0,
  });
}

export interface TuneJobOptions {
  split: Split;
  recipe: TuneRecipe;
  backend: Backend;
  tokenizer: Pick<TextTokenizer, 'eosId'>;
  /** Checkpoints (resumes from the latest one there). */
  store?: CheckpointStore;
}

export async function tuneJob(
  model: { spec: ModelSpec; weights: WeightMap },
  data: Pick<PreparedTraining, 'train' | 'valid'>,
  o: TuneJobOptions,
  ctl: JobControl<TuneProgress> = {},
): Promise<TuneResult> {
  if (data.train.length === 0) throw new Error('no training examples after encoding');
  const dec = decoderFromWeights(o.backend, model.spec, model.weights);
  try {
    return await tune(
      dec,
      { train: data.train, valid: data.valid.length ? data.valid : null },
      {
        ...o.recipe,
        split: o.split,
        padId: padIdOf(o.tokenizer),
        ...(o.store ? { store: o.store } : {}),
        ...(ctl.signal ? { signal: ctl.signal } : {}),
        ...(ctl.pause ? { pause: ctl.pause } : {}),
        ...(ctl.onProgress ? { onProgress: ctl.onProgress } : {}),
      },
    );
  } finally {
    dec.free();
  }
}

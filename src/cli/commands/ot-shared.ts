/**
 * Shared plumbing of the tune / eval / plug / ot commands (Node side only: files, task folders, the
 * tokenizer); the numerics live in src/ot.
 */
import { existsSync, statSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { withoutSpecialTokens } from '../../data/tokenizer';
import type { TextTokenizer } from '../../data/types';
import { loadTokenizer, tokenizerFiles } from '../../model/tokenizer';
import type { ModelSpec } from '../../model/spec';
import { checkTokenizerVocab } from '../../model/hf';
import type { TaskFile } from '../../ot/offsite/task-data';
import { LORA_TARGETS, parseLoraTargets, type LoraConfig } from '../../ot/offsite/lora';
import { loraDefaultTargets } from '../../jobs/lora-defaults';
import type { TuneOptions } from '../../ot/offsite/tune';
import type { ScheduleKind } from '../../engine/optim';
import { UsageError } from '../command';
import { defaultAddBos } from '../../jobs/data';
import { readDatasetFile } from '../../faults/data-file';
import { openSource, type OpenedModel } from '../open';
import type { OptionSpec, ParsedOptions } from '../args';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/**
 * A data argument: a file path, or a bundled task NAME (or task folder), meaning its `split`.jsonl — so every
 * option that takes a data file also takes the names `eval --task` and `ot --task` take. Null when neither.
 */
export function resolveDataPath(arg: string, split: 'train' | 'valid' | 'test', cwd: string): string | null {
  const p = resolve(cwd, arg);
  if (existsSync(p) && statSync(p).isFile()) return p;
  return resolveTaskFolder(arg, cwd)?.[split] ?? null;
}

/**
 * Reads a data file (or a bundled task's split), streamed (no whole-file copy or string): a folder, a missing
 * file or a file over the size limit is a named error before reading; bad records are DatasetErrors with file
 * and line.
 */
export async function readTaskFile(path: string, cwd: string, split: 'train' | 'valid' | 'test' = 'train'): Promise<TaskFile> {
  const named = resolveDataPath(path, split, cwd);
  const p = named ?? resolve(cwd, path);
  const name = named && named !== resolve(cwd, path) ? `${path.replace(/\/+$/, '')}/${split}.jsonl` : path;
  return { name, bytes: new Uint8Array(0), dataset: await readDatasetFile(p, name) };
}

export interface TaskFolder {
  name: string;
  dir: string;
  train: string | null;
  valid: string | null;
  test: string | null;
}

/** A task name under public/data (or a folder holding train/valid/test.jsonl). */
export function resolveTaskFolder(name: string, cwd: string): TaskFolder | null {
  const candidates = [resolve(cwd, name), join(REPO_ROOT, 'public', 'data', name)];
  for (const dir of candidates) {
    if (existsSync(dir) && statSync(dir).isDirectory()) {
      const f = (n: string): string | null => (existsSync(join(dir, n)) ? join(dir, n) : null);
      return {
        name: name.replace(/\/+$/, '').split('/').pop()!,
        dir,
        train: f('train.jsonl'),
        valid: f('valid.jsonl'),
        test: f('test.jsonl'),
      };
    }
  }
  return null;
}

/** The tokenizer of a model folder, or of --tokenizer DIR (emulator packages carry none). */
export async function cliTokenizer(model: OpenedModel, tokDir: string | undefined, cwd: string): Promise<TextTokenizer> {
  if (tokDir) {
    const src = await openSource(resolve(cwd, tokDir));
    if (!(await tokenizerFiles(src))) throw new UsageError(`no tokenizer.json (or vocab.json + merges.txt) in ${tokDir}`);
    const tok = await loadTokenizer(src);
    const w = checkTokenizerVocab(tok.vocabSize, model.spec, `${tokDir}/tokenizer.json`);
    if (w) process.stderr.write(`warning: ${w}\n`);
    return withoutSpecialTokens(tok);
  }
  if (model.tokenizer) {
    // openModel already warned about (or refused) a mismatched tokenizer of the model's own folder.
    return withoutSpecialTokens(model.tokenizer);
  }
  throw new UsageError(`${model.path} has no tokenizer files; pass --tokenizer DIR (e.g. the base model's folder)`);
}

/** The shared BOS policy (src/jobs/data.ts), re-exported for the commands. */
export { defaultAddBos } from '../../jobs/data';

export function contextLength(spec: ModelSpec, requested: number | undefined): number {
  const max = spec.maxPositions;
  if (requested === undefined) return max;
  if (!(Number.isInteger(requested) && requested >= 2)) throw new UsageError(`--context must be an integer >= 2`);
  return Math.min(max, requested);
}

/** Writes files into a folder, each atomically (temp + rename), in map order. */
export async function writeFiles(dir: string, files: Map<string, Uint8Array>): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  for (const [name, bytes] of files) {
    const p = join(dir, name);
    await mkdir(dirname(p), { recursive: true });
    const tmp = `${p}.tmp-${process.pid}`;
    await writeFile(tmp, bytes);
    await rename(tmp, p);
  }
  return [...files.keys()];
}

// ---- tuning options shared by `tune` and `ot`

export const TUNE_OPTIONS: Record<string, OptionSpec> = {
  lr: { type: 'number' },
  epochs: { type: 'number' },
  steps: { type: 'number' },
  batch: { type: 'number' },
  accum: { type: 'number' },
  'weight-decay': { type: 'number' },
  clip: { type: 'number' },
  schedule: { type: 'string' },
  warmup: { type: 'number' },
  'warmup-ratio': { type: 'number' },
  seed: { type: 'number' },
  'eval-every': { type: 'number' },
  'checkpoint-every': { type: 'number' },
  lora: { type: 'number' },
  'lora-alpha': { type: 'number' },
  'lora-targets': { type: 'string' },
  context: { type: 'number' },
  'valid-fraction': { type: 'number' },
  'eval-batch': { type: 'number' },
  tokenizer: { type: 'string' },
  bos: { type: 'boolean' },
  'no-bos': { type: 'boolean' },
};

export const TUNE_USAGE =
  '[--lr X] [--epochs N | --steps N] [--batch B] [--accum K] [--schedule linear|cosine|constant] [--warmup N | --warmup-ratio F] ' +
  `[--weight-decay W] [--clip C] [--seed S | --seeds S1,S2,… (ot)] [--eval-every N] [--checkpoint-every N] [--lora R [--lora-alpha A] [--lora-targets ${LORA_TARGETS.join(',')}]] ` +
  '[--context C] [--valid-fraction F] [--tokenizer DIR] [--bos | --no-bos]';

const num = (o: ParsedOptions, k: string): number | undefined => (o[k] === undefined ? undefined : (o[k] as number));

/** `family` picks the default targets (GPT-2: c_attn) when --lora-targets is not given. */
export function loraFromOptions(o: ParsedOptions, family?: ModelSpec['family']): LoraConfig | undefined {
  const r = num(o, 'lora');
  if (r === undefined) {
    if (o['lora-alpha'] !== undefined || o['lora-targets'] !== undefined)
      throw new UsageError('--lora-alpha / --lora-targets need --lora R');
    return undefined;
  }
  if (!(Number.isInteger(r) && r >= 1)) throw new UsageError('--lora expects a positive integer rank');
  const targets = o['lora-targets'] !== undefined ? parseLoraTargets(o['lora-targets'] as string) : loraDefaultTargets(family);
  return { r, alpha: num(o, 'lora-alpha') ?? 2 * r, dropout: 0, targets: targets as LoraConfig['targets'] };
}

export function tuneFromOptions(
  o: ParsedOptions,
  defaults: { lr: number; epochs?: number; batch: number },
  family?: ModelSpec['family'],
): Omit<TuneOptions, 'split'> {
  const schedule = (o.schedule as string | undefined) ?? 'linear';
  if (!['linear', 'cosine', 'constant'].includes(schedule)) throw new UsageError(`--schedule must be linear, cosine or constant`);
  const steps = num(o, 'steps');
  const epochs = num(o, 'epochs');
  if (steps !== undefined && epochs !== undefined) throw new UsageError('give --steps or --epochs, not both');
  const lora = loraFromOptions(o, family);
  const clip = num(o, 'clip');
  const ce = num(o, 'checkpoint-every');
  const ee = num(o, 'eval-every');
  if (ee !== undefined && !(Number.isInteger(ee) && ee >= 1))
    throw new UsageError(`--eval-every expects a positive number of steps, got ${ee}`);
  if (ce !== undefined && !(Number.isInteger(ce) && ce >= 1))
    throw new UsageError(`--checkpoint-every expects a positive number of steps, got ${ce} (0 would mean never, losing work on a crash)`);
  return {
    method: lora ? 'lora' : 'adapter',
    ...(lora ? { lora } : {}),
    lr: num(o, 'lr') ?? defaults.lr,
    ...(steps !== undefined ? { maxSteps: steps } : { epochs: epochs ?? defaults.epochs ?? 1 }),
    batchSize: num(o, 'batch') ?? defaults.batch,
    gradAccum: num(o, 'accum') ?? 1,
    weightDecay: num(o, 'weight-decay') ?? 0,
    maxGradNorm: clip === undefined ? 1 : clip <= 0 ? null : clip,
    schedule: schedule as ScheduleKind,
    ...(num(o, 'warmup') !== undefined ? { warmupSteps: num(o, 'warmup') } : {}),
    ...(num(o, 'warmup-ratio') !== undefined ? { warmupRatio: num(o, 'warmup-ratio') } : {}),
    seed: num(o, 'seed') ?? 0,
    ...(num(o, 'eval-every') !== undefined ? { evalEvery: num(o, 'eval-every') } : {}),
    ...(num(o, 'checkpoint-every') !== undefined ? { checkpointEvery: num(o, 'checkpoint-every') } : {}),
    ...(num(o, 'eval-batch') !== undefined ? { evalBatchSize: num(o, 'eval-batch') } : {}),
  };
}

export function bosFromOptions(o: ParsedOptions, spec: ModelSpec, tok: TextTokenizer): boolean {
  if (o.bos && o['no-bos']) throw new UsageError('--bos and --no-bos together');
  if (o.bos) return true;
  if (o['no-bos']) return false;
  return defaultAddBos(spec, tok);
}

/** Progress line writer (stderr), at most one line per `everyMs`. */
export function throttled(err: (l: string) => void, everyMs = 2000): (line: string, force?: boolean) => void {
  let last = 0;
  return (line, force = false) => {
    const now = Date.now();
    if (force || now - last >= everyMs) {
      last = now;
      err(line);
    }
  };
}

export function fmtEta(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 90) return `${s.toFixed(0)}s`;
  if (s < 5400) return `${(s / 60).toFixed(1)}m`;
  return `${(s / 3600).toFixed(1)}h`;
}

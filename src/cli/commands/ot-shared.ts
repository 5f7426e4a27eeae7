/**
 * Shared plumbing of the tune / eval / plug / ot commands (Node side only: files, task folders, the
 * tokenizer); the numerics live in src/ot.
 */
import { existsSync, statSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { withoutSpecialTokens } from '../../data/tokenizer';
import type { TextTokenizer } from '../../data/types';
import { DatasetError } from '../../data/errors';
import { loadTokenizer, tokenizerFiles } from '../../model/tokenizer';
import type { ModelSpec } from '../../model/spec';
import type { TaskFile } from '../../ot/offsite/task-data';
import { LORA_TARGETS, parseLoraTargets, type LoraConfig } from '../../ot/offsite/lora';
import type { TuneOptions } from '../../ot/offsite/tune';
import type { ScheduleKind } from '../../engine/optim';
import { UsageError } from '../command';
import { openSource, type OpenedModel } from '../open';
import type { OptionSpec, ParsedOptions } from '../args';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** Reads a data file; a missing file is a clear error naming it. */
export async function readTaskFile(path: string, cwd: string): Promise<TaskFile> {
  const p = resolve(cwd, path);
  try {
    return { name: path, bytes: new Uint8Array(await readFile(p)) };
  } catch (e) {
    throw new DatasetError('empty', path, null, `cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
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
      return { name: name.replace(/\/+$/, '').split('/').pop()!, dir, train: f('train.jsonl'), valid: f('valid.jsonl'), test: f('test.jsonl') };
    }
  }
  return null;
}

/** The tokenizer of a model folder, or of --tokenizer DIR (emulator packages carry none). */
export async function cliTokenizer(model: OpenedModel, tokDir: string | undefined, cwd: string): Promise<TextTokenizer> {
  if (tokDir) {
    const src = await openSource(resolve(cwd, tokDir));
    if (!(await tokenizerFiles(src))) throw new UsageError(`no tokenizer.json (or vocab.json + merges.txt) in ${tokDir}`);
    return withoutSpecialTokens(await loadTokenizer(src));
  }
  if (model.tokenizer) return withoutSpecialTokens(model.tokenizer);
  throw new UsageError(`${model.path} has no tokenizer files; pass --tokenizer DIR (e.g. the base model's folder)`);
}

/** BOS first for LLaMA-family models whose tokenizer has one (like the demo model's pretraining/eval). */
export function defaultAddBos(spec: ModelSpec, tok: TextTokenizer): boolean {
  return spec.family === 'llama' && tok.bosId !== null;
}

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
  `[--weight-decay W] [--clip C] [--seed S | --seeds S1,S2,… (ot)] [--eval-every N] [--lora R [--lora-alpha A] [--lora-targets ${LORA_TARGETS.join(',')}]] ` +
  '[--context C] [--valid-fraction F] [--tokenizer DIR] [--bos | --no-bos]';

const num = (o: ParsedOptions, k: string): number | undefined => (o[k] === undefined ? undefined : (o[k] as number));

export function loraFromOptions(o: ParsedOptions): LoraConfig | undefined {
  const r = num(o, 'lora');
  if (r === undefined) {
    if (o['lora-alpha'] !== undefined || o['lora-targets'] !== undefined) throw new UsageError('--lora-alpha / --lora-targets need --lora R');
    return undefined;
  }
  if (!(Number.isInteger(r) && r >= 1)) throw new UsageError('--lora expects a positive integer rank');
  const targets = o['lora-targets'] !== undefined ? parseLoraTargets(o['lora-targets'] as string) : ['q', 'v'];
  return { r, alpha: num(o, 'lora-alpha') ?? 2 * r, dropout: 0, targets: targets as LoraConfig['targets'] };
}

export function tuneFromOptions(o: ParsedOptions, defaults: { lr: number; epochs?: number; batch: number }): Omit<TuneOptions, 'split'> {
  const schedule = (o.schedule as string | undefined) ?? 'linear';
  if (!['linear', 'cosine', 'constant'].includes(schedule)) throw new UsageError(`--schedule must be linear, cosine or constant`);
  const steps = num(o, 'steps');
  const epochs = num(o, 'epochs');
  if (steps !== undefined && epochs !== undefined) throw new UsageError('give --steps or --epochs, not both');
  const lora = loraFromOptions(o);
  const clip = num(o, 'clip');
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

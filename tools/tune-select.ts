/**
 * Chooses the default tuning budgets (src/jobs/tune-defaults.ts) on the VALIDATION split of every bundled
 * task: for each adapter kind (full blocks, LoRA) and candidate recipe, tune the uncompressed demo model
 * with every block trainable ("Full FT", as `gradot ot --full-ft` does) on the first `examples` training
 * items, evaluate it on valid.jsonl and compare with the untuned model (Full ZS) on the same items: paired
 * difference ± its standard error and the verdict of src/ot/offsite/verdicts.ts (yes = above two SE).
 *
 *   npx tsx tools/tune-select.ts run [--tasks spam-mc,genre-short-mc] [--cands full-3e-4,lora-5e-3] [--threads 1]
 *   npx tsx tools/tune-select.ts table          # the Markdown table of docs/offsite-tuning.md ("Default budgets")
 *
 * Resumable: one JSON per cell in docs/tune-select/ (a finished cell is skipped; `gradot tune` itself resumes
 * a cell cut short from its checkpoints under the work folder). Everything goes through the CLI, so the
 * numbers are the engine's.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pairedDifference } from '../src/ot/offsite/metrics';
import { judge } from '../src/ot/offsite/verdicts';

const ROOT = resolve(import.meta.dirname, '..');
const OUT = join(ROOT, 'docs', 'tune-select');
const MODEL = 'public/models/demo';
const TASKS = ['spam-mc', 'genre-short-mc', 'genre-mc', 'imdb-sentiment-mc', 'imdb-sentiment-qa', 'wordnet-def-mc'];

export interface Candidate {
  id: string;
  kind: 'full' | 'lora';
  lr: number;
  epochs: number;
  batch: number;
  examples: number;
  lora?: number;
}

export const CANDIDATES: Candidate[] = [
  { id: 'full-3e-4', kind: 'full', lr: 3e-4, epochs: 1, batch: 8, examples: 512 },
  { id: 'full-1e-4', kind: 'full', lr: 1e-4, epochs: 1, batch: 8, examples: 512 },
  { id: 'lora-5e-3', kind: 'lora', lr: 5e-3, epochs: 1, batch: 8, examples: 512, lora: 8 },
  { id: 'lora-2e-3', kind: 'lora', lr: 2e-3, epochs: 1, batch: 8, examples: 512, lora: 8 },
  // The whole train split (every bundled task has at most 2000 items): what a task that 512 items do not
  // teach (imdb-sentiment-mc) needs, at four times the default's cost.
  { id: 'full-3e-4-all', kind: 'full', lr: 3e-4, epochs: 1, batch: 8, examples: 2000 },
  { id: 'lora-5e-3-all', kind: 'lora', lr: 5e-3, epochs: 1, batch: 8, examples: 2000, lora: 8 },
];

interface Metrics {
  kind: 'mc' | 'sft' | 'lm';
  acc?: number;
  accNorm?: number;
  loss?: number;
  correct?: string;
  n?: number;
}

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}

function gradot(args: string[], threads: string): Record<string, unknown> {
  const out = execFileSync('node', [join(ROOT, 'bin/gradot.mjs'), ...args, '--threads', threads, '--json'], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 26,
  });
  const last = out.trim().split('\n').pop()!;
  return JSON.parse(last) as Record<string, unknown>;
}

const pick = (m: Record<string, unknown>): Metrics => ({
  kind: m.kind as Metrics['kind'],
  ...(m.acc !== undefined ? { acc: m.acc as number, accNorm: m.accNorm as number, correct: m.correct as string } : {}),
  ...(m.loss !== undefined ? { loss: m.loss as number } : {}),
  ...(m.n !== undefined ? { n: m.n as number } : {}),
});

function run(): void {
  const threads = flag('threads') ?? '1';
  const tasks = flag('tasks')?.split(',') ?? TASKS;
  const cands = flag('cands')?.split(',') ?? CANDIDATES.map((c) => c.id);
  const work = flag('work') ?? '/tmp/tune-select';
  mkdirSync(OUT, { recursive: true });
  mkdirSync(work, { recursive: true });
  for (const id of cands) {
    const c = CANDIDATES.find((x) => x.id === id);
    if (!c) throw new Error(`unknown candidate ${id}`);
    for (const task of tasks) {
      const valid = join(ROOT, 'public/data', task, 'valid.jsonl');
      const zsFile = join(OUT, `${task}-zs.json`);
      if (!existsSync(zsFile)) {
        const zs = pick(gradot(['eval', MODEL, '--task', valid], threads));
        writeFileSync(zsFile, `${JSON.stringify({ task, split: 'valid', zs }, null, 1)}\n`);
      }
      const cell = join(OUT, `${task}-${c.id}.json`);
      if (existsSync(cell)) continue;
      const zs = (JSON.parse(readFileSync(zsFile, 'utf8')) as { zs: Metrics }).zs;
      const lines = readFileSync(join(ROOT, 'public/data', task, 'train.jsonl'), 'utf8')
        .split('\n')
        .filter(Boolean);
      const train = join(work, `${task}-train${c.examples}.jsonl`);
      writeFileSync(train, `${lines.slice(0, c.examples).join('\n')}\n`);
      const dir = join(work, `${task}-${c.id}`);
      const t0 = Date.now();
      const L = (JSON.parse(readFileSync(join(ROOT, MODEL, 'config.json'), 'utf8')) as { num_hidden_layers: number }).num_hidden_layers;
      gradot(
        [
          'tune',
          MODEL,
          '--train',
          train,
          '--valid',
          valid,
          '--adapters',
          `${L}:0`,
          '--out',
          dir,
          '--lr',
          String(c.lr),
          '--epochs',
          String(c.epochs),
          '--batch',
          String(c.batch),
          ...(c.lora ? ['--lora', String(c.lora)] : []),
        ],
        threads,
      );
      const tuneSeconds = (Date.now() - t0) / 1000;
      const ft = pick(gradot(['eval', MODEL, '--adapter', dir, '--task', valid], threads));
      const d = zs.correct && ft.correct ? pairedDifference(zs.correct, ft.correct) : null;
      const lossDiff = zs.loss !== undefined && ft.loss !== undefined ? zs.loss - ft.loss : null;
      const rec = {
        task,
        candidate: c,
        split: 'valid',
        zs,
        ft,
        diff: d ? d.mean : lossDiff,
        stderr: d ? d.stderr : null,
        verdict: judge(d ? d.mean : (lossDiff ?? Number.NaN), d ? d.stderr : null),
        tuneSeconds,
      };
      writeFileSync(cell, `${JSON.stringify(rec, null, 1)}\n`);
      console.error(`${task} ${c.id}: ${JSON.stringify({ diff: rec.diff, stderr: rec.stderr, verdict: rec.verdict })}`);
    }
  }
}

function table(): void {
  const rows = readdirSync(OUT)
    .filter((f) => f.endsWith('.json') && !f.endsWith('-zs.json'))
    .map(
      (f) =>
        JSON.parse(readFileSync(join(OUT, f), 'utf8')) as {
          task: string;
          candidate: Candidate;
          zs: Metrics;
          ft: Metrics;
          diff: number;
          stderr: number | null;
          verdict: string;
        },
    );
  rows.sort((a, b) => TASKS.indexOf(a.task) - TASKS.indexOf(b.task) || a.candidate.id.localeCompare(b.candidate.id));
  const pct = (x: number | undefined): string => (x === undefined ? '—' : (100 * x).toFixed(1));
  const se = (m: Metrics): string =>
    m.acc !== undefined ? ` ± ${(100 * Math.sqrt((m.acc * (1 - m.acc)) / m.correct!.length)).toFixed(1)}` : '';
  console.log('| task | candidate (kind, lr, epochs, batch, examples) | Full ZS | Full FT | FT − ZS ± paired SE | verdict |');
  console.log('| --- | --- | ---: | ---: | ---: | --- |');
  for (const r of rows) {
    const c = r.candidate;
    const v = (m: Metrics): string => (m.acc !== undefined ? `${pct(m.acc)}${se(m)}` : `loss ${m.loss!.toFixed(3)}`);
    const diff = r.stderr !== null ? `${(100 * r.diff).toFixed(1)} ± ${(100 * r.stderr).toFixed(1)}` : `${r.diff.toFixed(3)} (loss)`;
    console.log(
      `| ${r.task} | ${c.kind}${c.lora ? ` r${c.lora}` : ''}, ${c.lr}, ${c.epochs}, ${c.batch}, ${c.examples} | ${v(r.zs)} | ${v(r.ft)} | ${diff} | ${r.verdict} |`,
    );
  }
}

if (process.argv[2] === 'run') run();
else if (process.argv[2] === 'table') table();
else console.error('usage: npx tsx tools/tune-select.ts run|table [--tasks T,…] [--cands ID,…] [--threads N] [--work DIR]');

/**
 * Real model sizes in the studio (slow; not part of `npm test`: run with `npm run test:real-size`, which sets
 * REAL_SIZE=1). Uses hub-shaped random checkpoints made by `gradot make-model` into e2e/.models/ (gitignored,
 * reused when present).
 *
 * 1. gpt2-shaped (124 M, F32): the CLI's GradOT compress, then the same compress in the studio as a user does
 *    it (the model folder's files through the model file input, keep 0.5, bundled genre-short-mc support
 *    text, studio defaults otherwise), then as the data owner: that package, 10 tuning steps, 100 test items
 *    evaluated, and the returned adapters plugged in by the model owner. Targets: every job ends with numbers,
 *    the renderer (the page and its workers) stays under 3 GiB, the studio's compress takes at most 2x the
 *    CLI's measured in the same run.
 * 2. Qwen2.5-0.5B-shaped (494 M, BF16): every kind of emulator the studio offers, at keep 0.5; where the
 *    studio's pre-start memory check says a build will not fit, that it says so with the numbers before
 *    anything starts. Targets: the tab survives, the renderer stays under 4 GiB.
 *
 * Memory is sampled from /proc every second: every Chromium process below this test worker (the runner's
 * browser), classified by its command line (`--type=renderer`, `--type=gpu-process`, ...; the browser
 * process has no --type). Dedicated workers run inside the renderer process, so "renderer" is the page plus
 * its workers. Results: e2e/artifacts/real-size.json; screenshots: e2e/artifacts/real-size-*.png.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { Download, Locator, Page } from '@playwright/test';
import { artifacts, expect, repoRoot, shot, test } from './fixtures';

const REAL = !!process.env.REAL_SIZE;
const SKIP_WHY = 'real-size run (tens of minutes): set REAL_SIZE=1, or run `npm run test:real-size`';
const MODELS = join(repoRoot, 'e2e', '.models');
const GIB = 2 ** 30;
const RESULT_FILE = join(artifacts, 'real-size.json');

// ---------------------------------------------------------------------------------------------------------
// Process memory of the browser under this test worker.

type Kind = 'browser' | 'renderer' | 'gpu' | 'utility' | 'other-chromium' | 'node';

interface Sample {
  t: number;
  renderer: number;
  rendererMax: number;
  /** The largest high-water mark (VmHWM) of a renderer process: its true peak, between samples too. */
  rendererHwm: number;
  /** The largest renderer's RSS by kind (status RssAnon / RssFile / RssShmem): heap, mapped files, shared memory. */
  rendererAnon: number;
  rendererFile: number;
  rendererShmem: number;
  gpu: number;
  browser: number;
  chromium: number;
  node: number;
}

function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      // comm may hold spaces and parentheses: the fields after the last ')' are fixed.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(d));
      children.set(ppid, list);
    } catch {
      // exited between readdir and read
    }
  }
  const out: number[] = [];
  const todo = [root];
  while (todo.length) {
    for (const c of children.get(todo.pop()!) ?? []) {
      out.push(c);
      todo.push(c);
    }
  }
  return out;
}

function classify(pid: number): { kind: Kind; rss: number; hwm: number; anon: number; file: number; shmem: number } | null {
  try {
    // Chromium's child processes rewrite their title: one space-separated string, not NUL-separated args.
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split(/[\0 ]/);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
    const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
    const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024;
    const [anon, file, shmem] = [kb('RssAnon'), kb('RssFile'), kb('RssShmem')];
    const exe = cmd[0] ?? '';
    if (/chrom/i.test(exe)) {
      const type = cmd.find((a) => a.startsWith('--type='))?.slice(7);
      const kind: Kind = !type
        ? 'browser'
        : type === 'renderer'
          ? 'renderer'
          : type === 'gpu-process'
            ? 'gpu'
            : type === 'utility'
              ? 'utility'
              : 'other-chromium';
      return { kind, rss, hwm, anon, file, shmem };
    }
    if (/node$/.test(exe)) return { kind: 'node', rss, hwm, anon, file, shmem };
    return null;
  } catch {
    return null;
  }
}

/** Samples every second; `peaks(from, to)` gives the largest figures in a time window. */
class MemorySampler {
  readonly samples: Sample[] = [];
  private timer: NodeJS.Timeout | null = null;

  sample(): Sample {
    const s: Sample = {
      t: Date.now(),
      renderer: 0,
      rendererMax: 0,
      rendererHwm: 0,
      rendererAnon: 0,
      rendererFile: 0,
      rendererShmem: 0,
      gpu: 0,
      browser: 0,
      chromium: 0,
      node: 0,
    };
    for (const pid of descendants(process.pid)) {
      const c = classify(pid);
      if (!c) continue;
      if (c.kind === 'node') {
        s.node += c.rss;
        continue;
      }
      s.chromium += c.rss;
      if (c.kind === 'renderer') {
        s.renderer += c.rss;
        if (c.rss > s.rendererMax) Object.assign(s, { rendererAnon: c.anon, rendererFile: c.file, rendererShmem: c.shmem });
        s.rendererMax = Math.max(s.rendererMax, c.rss);
        s.rendererHwm = Math.max(s.rendererHwm, c.hwm);
      } else if (c.kind === 'gpu') s.gpu += c.rss;
      else if (c.kind === 'browser') s.browser += c.rss;
    }
    this.samples.push(s);
    return s;
  }

  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), 1_000);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** The page renderer's RSS over time (seconds from the first sample, GiB), to place a peak in its phase. */
  timeline(): number[][] {
    const t0 = this.samples[0]?.t ?? 0;
    const g = (b: number) => Math.round((b / GIB) * 100) / 100;
    return this.samples.map((s) => [
      Math.round((s.t - t0) / 100) / 10,
      g(s.rendererMax),
      g(s.rendererAnon),
      g(s.rendererFile),
      g(s.rendererShmem),
    ]);
  }

  peaks(from = 0, to = Number.POSITIVE_INFINITY): Omit<Sample, 't'> {
    const p = {
      renderer: 0,
      rendererMax: 0,
      rendererHwm: 0,
      rendererAnon: 0,
      rendererFile: 0,
      rendererShmem: 0,
      gpu: 0,
      browser: 0,
      chromium: 0,
      node: 0,
    };
    for (const s of this.samples) {
      if (s.t < from || s.t > to) continue;
      for (const k of Object.keys(p) as (keyof typeof p)[]) p[k] = Math.max(p[k], s[k]);
    }
    return p;
  }
}

const gb = (b: number) => `${(b / GIB).toFixed(2)} GiB`;
const secs = (ms: number) => `${(ms / 1000).toFixed(0)} s`;
const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

// ---------------------------------------------------------------------------------------------------------
// Phases: wall time from the click to what the UI shows as done, with the job's own phase names on the way.

interface Phase {
  name: string;
  /** Start, in seconds from the sampler's first sample (see MemorySampler.timeline). */
  startS?: number;
  ms: number;
  peakRenderer: number;
  peakRendererProcess: number;
  peakGpu: number;
  peakChromium: number;
  peakNode?: number;
  load: string;
  /** The job's progress phases as the UI showed them (first seen, seconds after the start). */
  uiPhases?: { phase: string; atS: number; line: string }[];
  note?: string;
}

/** Polls a panel's progress line until `done` resolves: the distinct phases the user saw, with their times. */
async function watchProgress(page: Page, scope: Locator, done: Promise<unknown>, shotPrefix: string | null) {
  const t0 = Date.now();
  const seen: { phase: string; atS: number; line: string }[] = [];
  let finished = false;
  void done.then(
    () => (finished = true),
    () => (finished = true),
  );
  let shots = 0;
  while (!finished) {
    const line = await scope
      .getByTestId('job-status')
      .first()
      .innerText({ timeout: 1_000 })
      .catch(() => '');
    const phase = /^[^\n]*/.exec(line.trim())?.[0]?.split(/\s{2,}|\t/)[0] ?? '';
    const head = (
      await scope
        .locator('[data-testid=job-status] .phase')
        .first()
        .innerText({ timeout: 1_000 })
        .catch(() => phase)
    ).trim();
    if (head && seen[seen.length - 1]?.phase !== head) {
      seen.push({ phase: head, atS: (Date.now() - t0) / 1000, line: line.replace(/\s+/g, ' ').slice(0, 200) });
      if (shotPrefix && shots < 6 && Date.now() - t0 > 3_000) {
        shots++;
        await shot(page, `${shotPrefix}-${shots}`).catch(() => undefined);
      }
    } else if (head && seen.length) {
      // Keep the latest line of the phase (its last fraction and ETA).
      seen[seen.length - 1]!.line = line.replace(/\s+/g, ' ').slice(0, 200);
    }
    await Promise.race([done.catch(() => undefined), new Promise((r) => setTimeout(r, 2_000))]);
  }
  return seen;
}

async function timed<T>(
  mem: MemorySampler,
  phases: Phase[],
  name: string,
  run: () => Promise<T>,
  watch?: { page: Page; scope: Locator; shots?: string },
): Promise<T> {
  const t0 = Date.now();
  const p = run();
  const ui = watch ? watchProgress(watch.page, watch.scope, p, watch.shots ?? null) : Promise.resolve(undefined);
  let out: T;
  try {
    out = await p;
  } finally {
    const t1 = Date.now();
    mem.sample();
    const pk = mem.peaks(t0, t1 + 1);
    phases.push({
      name,
      startS: Math.round((t0 - (mem.samples[0]?.t ?? t0)) / 100) / 10,
      ms: t1 - t0,
      peakRenderer: pk.renderer,
      peakRendererProcess: pk.rendererMax,
      peakGpu: pk.gpu,
      peakChromium: pk.chromium,
      load: load(),
      uiPhases: await ui,
    });
    console.log(
      `  ${name}: ${secs(t1 - t0)}, page renderer peak ${gb(pk.rendererMax)} (all renderers ${gb(pk.renderer)}), gpu ${gb(pk.gpu)} (load ${load()})`,
    );
  }
  return out;
}

function table(phases: Phase[]): string {
  const rows = phases.map((p) =>
    [
      p.name.padEnd(34),
      `${(p.ms / 1000).toFixed(1)}`.padStart(8),
      (p.peakRendererProcess / GIB).toFixed(2).padStart(9),
      (p.peakRenderer / GIB).toFixed(2).padStart(9),
      (p.peakGpu / GIB).toFixed(2).padStart(6),
      (p.peakChromium / GIB).toFixed(2).padStart(9),
      ` ${p.load}${p.note ? `  ${p.note}` : ''}`,
    ].join(' '),
  );
  return [
    `${'phase'.padEnd(34)} ${'wall s'.padStart(8)} ${'page GiB'.padStart(9)} ${'rend. sum'.padStart(9)} ${'gpu'.padStart(6)} ${'all GiB'.padStart(9)}  load 1/5/15`,
    ...rows,
  ].join('\n');
}

function saveResults(key: string, value: unknown): void {
  const all = existsSync(RESULT_FILE) ? (JSON.parse(readFileSync(RESULT_FILE, 'utf8')) as Record<string, unknown>) : {};
  all[key] = value;
  writeFileSync(RESULT_FILE, JSON.stringify(all, null, 2));
}

// ---------------------------------------------------------------------------------------------------------
// Inputs.

async function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('error', reject);
    p.on('exit', (code) => resolve({ code: code ?? 1, out }));
  });
}

/** Folders given instead of e2e/.models/<kind> (a checkpoint made elsewhere, or a smaller one of the same family). */
const MODEL_DIRS: Record<string, string | undefined> = {
  gpt2: process.env.REAL_SIZE_GPT2_DIR,
  'qwen2.5-0.5b': process.env.REAL_SIZE_QWEN_DIR,
};

/** The hub-shaped random checkpoint (made once, then reused), or the folder its variable names. */
async function ensureModel(kind: 'gpt2' | 'qwen2.5-0.5b'): Promise<string> {
  const given = MODEL_DIRS[kind];
  if (given) {
    expect(existsSync(join(given, 'model.safetensors')), `${given}: no model.safetensors`).toBe(true);
    return given;
  }
  const dir = join(MODELS, kind);
  if (!existsSync(join(dir, 'model.safetensors'))) {
    mkdirSync(MODELS, { recursive: true });
    const r = await run(process.execPath, ['bin/gradot.mjs', 'make-model', kind, dir, '--force']);
    expect(r.code, `make-model ${kind}: ${r.out.slice(-500)}`).toBe(0);
  }
  return dir;
}

const modelFiles = (dir: string) =>
  ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json']
    .map((f) => join(dir, f))
    .filter((f) => existsSync(f));

/** The first `rows` lines of the bundled training set: with batch 4 and no validation share, rows / 4 steps. */
function trainSubset(rows: number): string {
  const src = readFileSync(join(repoRoot, 'public/data/genre-short-mc/train.jsonl'), 'utf8').split('\n').filter(Boolean);
  const path = join(MODELS, `genre-short-mc-train-${rows}.jsonl`);
  writeFileSync(path, `${src.slice(0, rows).join('\n')}\n`);
  return path;
}

const field = (page: Page, label: string, scope: Locator) =>
  scope
    .locator('label.field')
    .filter({ has: page.getByText(label, { exact: true }) })
    .locator('input')
    .first();

async function setKeep(page: Page, keep: number): Promise<void> {
  const settings = page.locator('section[aria-label="Emulator settings"]');
  await settings.locator('label.field.slider input[type=range]').fill(String(keep));
  await expect(settings.locator('label.field.slider .mono')).toHaveText(keep.toFixed(2));
}

const METHOD_LABELS: Record<string, string> = { gradot: 'GradOT', svd: 'SVD', prune: 'Prune', drop: 'Layer drop' };

/**
 * Picks an emulator kind at `keep` (GradOT: on the bundled genre-short-mc support text) and reads the memory
 * check the studio shows before anything starts: its level ('fits' | 'tight' | 'over') and its text.
 */
async function chooseBuild(page: Page, method: string, keep: number): Promise<{ level: string | null; text: string; build: Locator }> {
  const settings = page.locator('section[aria-label="Emulator settings"]');
  await settings.locator('label.chip', { hasText: METHOD_LABELS[method]! }).click();
  await setKeep(page, keep);
  if (method === 'gradot') {
    await page.getByTestId('support-bundled').getByRole('button', { name: 'genre-short-mc' }).click();
    await settings.getByText(/genre-short-mc\/train\.jsonl: \d+ rows/).waitFor({ timeout: 60_000 });
  }
  const fitBox = page.getByTestId('memory-fit');
  return {
    level: await fitBox.getAttribute('data-fit'),
    text: (await fitBox.innerText()).replace(/\s+/g, ' '),
    build: settings.getByRole('button', { name: /Build emulator/ }),
  };
}

/** Clicks Build and waits for the build's results panel, as one timed phase (progress phases recorded). */
async function runBuild(page: Page, mem: MemorySampler, phases: Phase[], method: string, keep: number, minutes: number, shots: string) {
  const settings = page.locator('section[aria-label="Emulator settings"]');
  const results = page.locator(`section[aria-label^="Results · ${method} keep ${keep}"]`);
  await timed(
    mem,
    phases,
    `studio: compress (${method}, keep ${keep})`,
    async () => {
      await settings.getByRole('button', { name: /Build emulator/ }).click();
      await results.waitFor({ timeout: minutes * 60_000 });
    },
    { page, scope: settings, shots },
  );
  return results;
}

async function openModel(page: Page, dir: string): Promise<void> {
  await page.getByTestId('model-drop-input').setInputFiles(modelFiles(dir));
  await page.locator('section[aria-label^="Inspect · "]').waitFor({ timeout: 1_800_000 });
}

/** Collects the files of one download burst (adapters come as several files). */
async function downloadsOf(page: Page, click: () => Promise<void>, dir: string, quietMs = 3_000): Promise<string[]> {
  const got: Download[] = [];
  const on = (d: Download) => got.push(d);
  page.on('download', on);
  await click();
  const t0 = Date.now();
  while (got.length === 0 && Date.now() - t0 < 600_000) await page.waitForTimeout(500);
  await page.waitForTimeout(quietMs);
  page.off('download', on);
  mkdirSync(dir, { recursive: true });
  const paths: string[] = [];
  for (const d of got) {
    const p = join(dir, d.suggestedFilename());
    await d.saveAs(p);
    paths.push(p);
  }
  return paths;
}

const metricsOf = async (scope: Locator) =>
  (await scope.locator('table.metrics tbody tr').allInnerTexts()).map((t) => t.replace(/\s+/g, ' ').trim());

// ---------------------------------------------------------------------------------------------------------

test.describe('real model sizes', () => {
  test.skip(!REAL, SKIP_WHY);

  test('gpt2-shaped: GradOT end to end in the studio, within 2x the CLI time and 3 GiB', async ({ studio: { page } }) => {
    test.setTimeout(4 * 3600_000);
    const mem = new MemorySampler();
    mem.start();
    let crashed = false;
    page.on('crash', () => (crashed = true));
    const phases: Phase[] = [];
    const failures: string[] = [];
    const rec: Record<string, unknown> = {};
    const dir = await ensureModel('gpt2');
    const out = join(MODELS, 'out');
    mkdirSync(out, { recursive: true });
    const uptimeStart = (await run('uptime', [])).out.trim();
    console.log(`  start: ${uptimeStart}`);

    try {
      // ---- CLI reference: the same compress the studio runs (its defaults: 32 support examples of 64 tokens
      // in batches of 4, no held-out figure).
      const cliOut = join(out, 'gpt2-gradot-cli');
      rmSync(cliOut, { recursive: true, force: true });
      const cliArgs = ['bin/gradot.mjs', 'compress', dir, '--method', 'gradot', '--keep', '0.5', '--support', 'genre-short-mc'];
      cliArgs.push('--heldout', 'none', '--support-batches', '8', '--batch', '4', '--seq', '64', '--out', cliOut);
      const cli = await timed(mem, phases, 'CLI compress (gradot, keep 0.5)', () => run(process.execPath, cliArgs));
      const cliPhase = phases[phases.length - 1]!;
      cliPhase.peakNode = mem.peaks(Date.now() - cliPhase.ms, Date.now()).node;
      cliPhase.note = `CLI peak RSS ${gb(cliPhase.peakNode)}`;
      expect(cli.code, `CLI compress failed: ${cli.out.slice(-1500)}`).toBe(0);
      const cliMs = cliPhase.ms;
      rec.cli = { ms: cliMs, peakRss: cliPhase.peakNode, args: cliArgs.slice(1).join(' ') };

      // ---- Model owner: open the folder's files, GradOT at keep 0.5 on bundled support text.
      await timed(mem, phases, 'studio: open model', () => openModel(page, dir));
      const inspect = (await page.locator('section[aria-label^="Inspect · "]').innerText()).replace(/\s+/g, ' ');
      await shot(page, 'real-size-gpt2-opened');
      const fit = (await chooseBuild(page, 'gradot', 0.5)).text;
      console.log(`  memory check before the build: ${fit}`);
      const results = await runBuild(page, mem, phases, 'gradot', 0.5, 180, 'real-size-gpt2-compress');
      const studioCompressMs = phases[phases.length - 1]!.ms;
      const summary = (await page.getByTestId('compress-summary').innerText()).replace(/\s+/g, ' ');
      const resultsText = (await results.innerText()).replace(/\s+/g, ' ');
      const studioTime = /time\s*([\d.]+)s/.exec(resultsText)?.[1];
      Object.assign(rec, {
        studioCompressMs,
        studioCompressOwnTimerS: studioTime ? Number(studioTime) : null,
        ratio: studioCompressMs / cliMs,
        memoryCheck: fit,
        summary,
      });
      await shot(page, 'real-size-gpt2-compressed');
      const pkgPaths = await timed(mem, phases, 'studio: download package', () =>
        downloadsOf(
          page,
          () => results.getByRole('button', { name: /Download emulator package/ }).click(),
          join(out, 'gpt2-studio-pkg'),
          1_000,
        ),
      );

      // ---- Data owner: that package, 10 tuning steps (40 rows, batch 4, no validation share).
      await page.getByTestId('tab-data').click();
      await timed(mem, phases, 'studio: open package', async () => {
        await page.getByTestId('package-drop-input').setInputFiles(pkgPaths);
        await page.locator('section[aria-label="Emulator package"]').getByText('source model').waitFor({ timeout: 1_800_000 });
      });
      await page.getByTestId('dataset-drop-input').setInputFiles(trainSubset(40));
      const training = page.locator('section[aria-label="Training"]');
      await field(page, 'valid fraction', training).fill('0');
      await field(page, 'batch', training).fill('4');
      await field(page, 'epochs', training).fill('1');
      const loss = page.locator('section[aria-label="Loss"]');
      const start = training.getByRole('button', { name: 'Start' });
      await expect(start).toBeEnabled({ timeout: 60_000 });
      await timed(
        mem,
        phases,
        'studio: tune 10 steps',
        async () => {
          await start.click();
          await loss.getByText('throughput').waitFor({ timeout: 3 * 3600_000 });
        },
        { page, scope: training, shots: 'real-size-gpt2-tune' },
      );
      const lossText = (await loss.innerText()).replace(/\s+/g, ' ');
      if (!/steps\s*10\/10/.test(lossText)) failures.push(`tuning did not run 10/10 steps: "${lossText.slice(0, 300)}"`);
      await shot(page, 'real-size-gpt2-tuned');

      // ---- Evaluate 100 items of genre-short-mc test (zero-shot and fine-tuned).
      const evalPanel = page.locator('section[aria-label="Evaluate and export"]');
      await page.getByTestId('eval-drop-input').setInputFiles(join(repoRoot, 'public/data/genre-short-mc/test.jsonl'));
      await field(page, 'examples (0 = all)', evalPanel).fill('100');
      const evalEstimate = (await evalPanel.getByTestId('eval-estimate').innerText()).replace(/\s+/g, ' ');
      await timed(
        mem,
        phases,
        'studio: evaluate 100 items',
        async () => {
          await evalPanel.getByRole('button', { name: /Evaluate emulator/ }).click();
          await evalPanel.locator('table.metrics').waitFor({ timeout: 3 * 3600_000 });
        },
        { page, scope: evalPanel, shots: 'real-size-gpt2-eval' },
      );
      const evalRows = await metricsOf(evalPanel);
      rec.evaluate = evalRows;
      await shot(page, 'real-size-gpt2-evaluated');
      const adapterPaths = await downloadsOf(
        page,
        () => evalPanel.getByRole('button', { name: 'Download adapters (.safetensors)' }).click(),
        join(out, 'gpt2-studio-adapters'),
      );

      // ---- Model owner: plug the returned adapters in, evaluated on the same 100 items.
      await page.getByTestId('tab-model').click();
      const plug = page.locator('section[aria-label="Plug in returned adapters"]');
      await page.getByTestId('adapter-drop-input').setInputFiles(adapterPaths);
      // Accepted (the drop zone names the layout) or refused (an error toast says why): whichever comes first.
      const accepted = await Promise.race([
        plug
          .getByText(/layout, \d+ tensors/)
          .waitFor({ timeout: 600_000 })
          .then(() => null),
        page
          .locator('[data-testid=toast].error')
          .first()
          .waitFor({ timeout: 600_000 })
          .then(async () => (await page.locator('[data-testid=toast].error').first().innerText()).replace(/\s+/g, ' ')),
      ]);
      if (accepted !== null) {
        await shot(page, 'real-size-gpt2-adapters-refused');
        throw new Error(`the model owner's studio refused the data owner's adapters: ${accepted}`);
      }
      await page.getByTestId('plugin-task-drop-input').setInputFiles(join(repoRoot, 'public/data/genre-short-mc/test.jsonl'));
      await field(page, 'examples (0 = all)', plug).fill('100');
      await timed(
        mem,
        phases,
        'studio: plug in + evaluate 100 items',
        async () => {
          await plug.getByRole('button', { name: 'Plug in and evaluate' }).click();
          await plug.locator('table.metrics').waitFor({ timeout: 3 * 3600_000 });
        },
        { page, scope: plug, shots: 'real-size-gpt2-plugin' },
      );
      const plugRows = await metricsOf(plug);
      rec.done = true;
      await plug.scrollIntoViewIfNeeded();
      await shot(page, 'real-size-gpt2-plugged-in');

      // ---- Numbers and targets.
      mem.stop();
      const all = mem.peaks();
      const pageHwm = Math.max(all.rendererHwm, all.rendererMax);
      const ratio = studioCompressMs / cliMs;
      const uptimeEnd = (await run('uptime', [])).out.trim();
      console.log(`\n${table(phases)}\n`);
      console.log(
        `  compress: studio ${secs(studioCompressMs)} (its own timer ${studioTime ?? '?'} s) vs CLI ${secs(cliMs)}: ratio ${ratio.toFixed(2)} (target <= 2)`,
      );
      console.log(
        `  page renderer (page + workers) peak ${gb(pageHwm)} (high-water mark; sampled ${gb(all.rendererMax)}; all renderer processes ${gb(all.renderer)}); GPU process ${gb(all.gpu)}; all Chromium ${gb(all.chromium)} (target: page renderer < 3 GiB)`,
      );
      console.log(`  evaluate: ${evalRows.join(' | ')}`);
      console.log(`  plug-in: ${plugRows.join(' | ')}`);
      console.log(`  load: start "${uptimeStart}", end "${uptimeEnd}"`);
      Object.assign(rec, {
        cli: { ms: cliMs, peakRss: cliPhase.peakNode, args: cliArgs.slice(1).join(' ') },
        studioCompressMs,
        studioCompressOwnTimerS: studioTime ? Number(studioTime) : null,
        ratio,
        peaks: all,
        inspect: inspect.slice(0, 600),
        memoryCheck: fit,
        summary,
        evalEstimate,
        evaluate: evalRows,
        plugIn: plugRows,
      });

      if (crashed) failures.push('the tab crashed');
      if (evalRows.length < 2 || !evalRows.every((r) => /\d+\.\d%/.test(r)))
        failures.push(`evaluation shows no numbers: ${evalRows.join(' | ')}`);
      if (plugRows.length < 2 || !plugRows.every((r) => /\d+\.\d%/.test(r)))
        failures.push(`plug-in shows no numbers: ${plugRows.join(' | ')}`);
      if (!/keeps .*% of the middle blocks/.test(summary)) failures.push(`compress summary: "${summary.slice(0, 200)}"`);
      if (pageHwm >= 3 * GIB) failures.push(`the page's renderer (page + workers) peaked at ${gb(pageHwm)} (target < 3 GiB)`);
      if (ratio > 2)
        failures.push(
          `studio compress ${secs(studioCompressMs)} is ${ratio.toFixed(2)}x the CLI's ${secs(cliMs)} (target <= 2x; load ${load()})`,
        );
      expect(failures, failures.join('\n')).toEqual([]);
    } finally {
      // Whatever finished is kept, a failed or timed-out run included.
      mem.stop();
      if (!rec.done) console.log(`\n${table(phases)}\n`);
      saveResults('gpt2', {
        model: 'gpt2-shaped random (make-model gpt2)',
        finished: !!rec.done,
        phases,
        peaks: mem.peaks(),
        crashed,
        uptimeStart,
        uptimeEnd: (await run('uptime', [])).out.trim(),
        ...rec,
        timeline: mem.timeline(),
      });
    }
  });

  test('Qwen2.5-0.5B-shaped: every kind of emulator, or a refusal with numbers, without the tab dying', async ({
    studio: { page, guard },
  }) => {
    test.setTimeout(4 * 3600_000);
    const buildMinutes = Number(process.env.REAL_SIZE_BUILD_MINUTES ?? 180);
    const methods = (process.env.REAL_SIZE_QWEN_METHODS ?? 'drop,prune,svd,gradot').split(',').map((m) => m.trim());
    const mem = new MemorySampler();
    mem.start();
    let crashed = false;
    page.on('crash', () => (crashed = true));
    const phases: Phase[] = [];
    const failures: string[] = [];
    const perMethod: Record<string, unknown> = {};
    /** One kind: refused before starting (with the numbers), skipped, or built and its peak checked. */
    const qwenBuild = async (method: string): Promise<Record<string, unknown>> => {
      const { level, text: fitText, build } = await chooseBuild(page, method, 0.5);
      const entry: Record<string, unknown> = { memoryCheck: { level, text: fitText } };
      // Whatever the verdict, it gives numbers (an estimated peak in GB) before anything starts.
      if (!/\d+\.\d\d GB/.test(fitText)) failures.push(`${method}: the memory check gives no numbers ("${fitText}")`);
      if (level === 'over') {
        // Refused before starting: Build stays disabled until the user says "start anyway".
        if (await build.isEnabled()) failures.push(`${method}: estimated not to fit, yet Build is enabled without confirmation`);
        if (!/will probably not fit/.test(fitText)) failures.push(`${method}: the refusal does not say it will not fit ("${fitText}")`);
        await shot(page, `real-size-qwen-${method}-refused`);
        console.log(`  ${method}: refused before starting: ${fitText}`);
        return { ...entry, ran: false, why: 'refused before starting by the memory check' };
      }
      if (!methods.includes(method)) {
        const why = `not in REAL_SIZE_QWEN_METHODS (${methods.join(',')})`;
        console.log(`  ${method}: not run (${why}); memory check: ${fitText}`);
        return { ...entry, ran: false, why };
      }
      const settings = page.locator('section[aria-label="Emulator settings"]');
      try {
        await runBuild(page, mem, phases, method, 0.5, buildMinutes, `real-size-qwen-${method}`);
      } catch (e) {
        failures.push(`${method}: build did not finish within ${buildMinutes} min: ${(e as Error).message.slice(0, 200)}`);
        entry.unfinished = `not finished within ${buildMinutes} min (REAL_SIZE_BUILD_MINUTES)`;
        await shot(page, `real-size-qwen-${method}-unfinished`);
        for (const e of [...guard.pageErrors, ...guard.consoleErrors].slice(0, 10)) console.log(`  page error: ${e.slice(0, 300)}`);
        // Cancel it, so the next method (and the report) still run.
        await settings
          .getByTestId('cancel')
          .click({ timeout: 10_000 })
          .catch(() => undefined);
        await settings
          .getByTestId('job-status')
          .filter({ hasText: 'cancelled' })
          .waitFor({ timeout: 600_000 })
          .catch(() => undefined);
      }
      const ph = phases[phases.length - 1]!;
      const alive = !crashed && (await page.evaluate(() => 1).catch(() => 0)) === 1;
      Object.assign(entry, {
        ran: true,
        ms: ph.ms,
        peakPageRenderer: ph.peakRendererProcess,
        peakAllRenderers: ph.peakRenderer,
        peakGpu: ph.peakGpu,
        alive,
        uiPhases: ph.uiPhases,
      });
      if (!alive) {
        failures.push(`${method}: the tab died`);
        return entry;
      }
      entry.summary = (
        await page
          .getByTestId('compress-summary')
          .innerText()
          .catch(() => '')
      ).replace(/\s+/g, ' ');
      await shot(page, `real-size-qwen-${method}-built`);
      if (ph.peakRendererProcess >= 4 * GIB)
        failures.push(`${method}: the page's renderer (page + workers) peaked at ${gb(ph.peakRendererProcess)} (target < 4 GiB)`);
      return entry;
    };
    const uptimeStart = (await run('uptime', [])).out.trim();
    try {
      const dir = await ensureModel('qwen2.5-0.5b');
      await timed(mem, phases, 'studio: open model', () => openModel(page, dir));
      await shot(page, 'real-size-qwen-opened');
      // Cheapest first, so a long build at the end still leaves the others' numbers.
      for (const method of ['drop', 'prune', 'svd', 'gradot']) {
        const entry = await qwenBuild(method);
        perMethod[method] = entry;
        if (entry.alive === false) break;
      }
    } finally {
      mem.stop();
      const all = mem.peaks();
      const uptimeEnd = (await run('uptime', [])).out.trim();
      console.log(`\n${table(phases)}\n`);
      console.log(
        `  page renderer peak over the run ${gb(Math.max(all.rendererHwm, all.rendererMax))} (high-water mark; all renderers ${gb(all.renderer)}); GPU process ${gb(all.gpu)}; tab crashed: ${crashed}`,
      );
      console.log(`  load: start "${uptimeStart}", end "${uptimeEnd}"`);
      // What the page and its workers said went wrong (a job that stalls says nothing in the UI).
      for (const e of [...guard.pageErrors, ...guard.consoleErrors].slice(0, 10)) console.log(`  page error: ${e.slice(0, 300)}`);
      saveResults('qwen2.5-0.5b', {
        model: 'Qwen2.5-0.5B-shaped random (make-model qwen2.5-0.5b)',
        phases,
        perMethod,
        peaks: all,
        crashed,
        uptimeStart,
        uptimeEnd,
        timeline: mem.timeline(),
      });
      const pageHwm = Math.max(all.rendererHwm, all.rendererMax);
      if (pageHwm >= 4 * GIB) failures.push(`the page's renderer (page + workers) peaked at ${gb(pageHwm)} over the run (target < 4 GiB)`);
    }
    expect(failures, failures.join('\n')).toEqual([]);
  });
});

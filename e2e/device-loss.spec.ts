/**
 * A lost GPU device in the studio (standalone: `npx tsx e2e/device-loss.spec.ts`, exits non-zero on failure).
 *
 * The studio runs its jobs on the engine's WebGPU backend (here SwiftShader, allowed with `?gpu=software`).
 * Mid-way through a tuning run that checkpoints every 2 steps, the worker's GPU device is destroyed, as a
 * driver reset would; the run must finish on the CPU backend, resumed from its last checkpoint (not from
 * step 0), and the backend badge must say what happened. The emulator package is built in Node by the
 * same job the CLI runs (src/jobs), from the bundled demo model.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, normalize, sep } from 'node:path';
import { build } from 'vite';
import { CpuBackend } from '../src/engine/cpu/backend';
import { buildEmulatorJob } from '../src/jobs/build-emulator';
import { TOKENIZER_FILES } from '../src/jobs/data';
import { loadHFModel } from '../src/model/hf';
import { nodeDirSource } from '../src/model/source';
import { zipEmulatorPackage } from '../src/ot/emulator/package';
import { launchChromium } from './lib/browser';
import { repoRoot } from './lib/server';

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.json': 'application/json', '.wasm': 'application/wasm', '.svg': 'image/svg+xml',
};

/** The production build, served statically (what users get; Vite's dev server would need dependency pre-bundling). */
async function serveBuild(dir: string): Promise<{ server: Server; url: (p: string) => string }> {
  await build({ root: repoRoot, configFile: join(repoRoot, 'vite.config.ts'), logLevel: 'warn', build: { outDir: dir, emptyOutDir: true, sourcemap: false } });
  const server = createServer((req, res) => {
    let rel = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname).replace(/^\/+/, '');
    if (rel === '' || rel.endsWith('/')) rel += 'index.html';
    const file = normalize(join(dir, rel));
    if (!file.startsWith(dir + sep) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': MIME[extname(file)] ?? 'application/octet-stream' });
    res.end(readFileSync(file));
  });
  const port = await new Promise<number>((ok) => server.listen(0, '127.0.0.1', () => ok((server.address() as { port: number }).port)));
  return { server, url: (p) => `http://127.0.0.1:${port}/${p}` };
}

const failures: string[] = [];
function check(ok: boolean, what: string): void {
  console.log(`  ${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures.push(what);
}

async function emulatorZip(dir: string): Promise<string> {
  const demo = join(repoRoot, 'public/models/demo');
  const model = await loadHFModel(nodeDirSource(demo));
  const extraFiles = new Map<string, Uint8Array>();
  for (const f of TOKENIZER_FILES) {
    try {
      extraFiles.set(f, new Uint8Array(readFileSync(join(demo, f))));
    } catch {
      // not every tokenizer has every file
    }
  }
  // A small emulator (half the middle blocks dropped) keeps software-WebGPU steps short.
  const built = await buildEmulatorJob({ spec: model.spec, weights: model.weights, modelId: 'demo', tokenizer: null, support: null, extraFiles }, {
    method: 'drop', keep: 0.5, split: { bottom: 2, top: 2 }, seqLen: 32, supportExamples: 1, batch: 1, backend: new CpuBackend(),
  });
  const path = join(dir, 'demo-drop-emulator.zip');
  writeFileSync(path, zipEmulatorPackage(built.files));
  return path;
}

async function main(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'gradot-device-loss-'));
  const artifacts = join(repoRoot, 'e2e', 'artifacts');
  mkdirSync(artifacts, { recursive: true });
  const site = await serveBuild(join(dir, 'dist'));
  const browser = await launchChromium();
  try {
    const pkg = await emulatorZip(dir);
    const page = await browser.context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(site.url('index.html?gpu=software'));
    const badge = page.getByTestId('backend-badge');
    await page.waitForFunction(() => {
      const t = document.querySelector('[data-testid=backend-badge]')?.textContent;
      return t !== undefined && !t.includes('detecting');
    }, null, { timeout: 60_000 });
    const before = await badge.innerText();
    check(before.includes('WebGPU'), `the studio runs on WebGPU (${before.replace(/\s+/g, ' ').slice(0, 80)})`);
    if (!before.includes('WebGPU')) return 1;

    await page.getByTestId('tab-data').click();
    await page.getByTestId('package-drop-input').setInputFiles(pkg);
    await page.locator('section[aria-label="Emulator package"] dl', { hasText: 'drop' }).waitFor({ timeout: 30_000 });
    const qa = readFileSync(join(repoRoot, 'public/data/imdb-sentiment-qa/valid.jsonl'), 'utf8').split('\n').slice(0, 40).join('\n');
    await page.getByTestId('dataset-drop-input').setInputFiles({ name: 'train.jsonl', mimeType: 'application/x-ndjson', buffer: Buffer.from(qa) });
    await page.locator('.meta', { hasText: 'train.jsonl' }).first().waitFor({ timeout: 15_000 });
    const field = (label: string) => page.locator('section[aria-label="Training"] label.field', { hasText: label }).locator('input').first();
    await field('lr').fill('0.001');
    await field('epochs').fill('1');
    await field('batch').fill('4');
    await field('seq len').fill('32');
    await field('checkpoint every').fill('2');
    await field('valid fraction').fill('0');
    await page.locator('section[aria-label="Training"]').getByRole('button', { name: 'Start' }).click();

    // Past the first checkpoint (step 2), on the GPU.
    const progress = page.locator('section[aria-label="Training"] .progress-line');
    const onGpu = await page.waitForFunction(() => {
      const t = document.querySelector('section[aria-label="Training"] .progress-line')?.textContent ?? '';
      const m = /step (\d+)\/(\d+)/.exec(t);
      return m !== null && Number(m[1]) >= 3 && Number(m[1]) < Number(m[2]) && t.includes('webgpu');
    }, null, { timeout: 300_000, polling: 100 }).then(() => true, () => false);
    check(onGpu, `training runs on the GPU past its first checkpoint (${(await progress.innerText().catch(() => '')).replace(/\s+/g, ' ').slice(0, 100)})`);
    if (!onGpu) return 1;

    const worker = page.workers().find((w) => w.url().includes('studio.worker'));
    check(worker !== undefined, 'the studio worker is reachable');
    if (!worker) return 1;
    const destroyed = await worker.evaluate(() => (self as unknown as { gradotLoseDevice(): Promise<boolean> }).gradotLoseDevice());
    check(destroyed, 'device.destroy() forced mid-run');

    const done = page.locator('section[aria-label="Loss"] dl', { hasText: 'resumed from' });
    const finished = await done.waitFor({ timeout: 300_000 }).then(() => true, () => false);
    const summary = finished ? (await done.innerText()).replace(/\s+/g, ' ') : '';
    check(finished, `the run finishes after the device loss (${summary.slice(0, 200)})`);
    const resumedFrom = Number(/resumed from (\d+)/.exec(summary)?.[1] ?? 0);
    check(resumedFrom >= 2, `it resumed from its last checkpoint (step ${resumedFrom}), not from the start`);
    check(/on cpu/.test(summary), 'and finished on the CPU backend');
    const after = (await badge.innerText()).replace(/\s+/g, ' ');
    check(/device lost/i.test(after) && /CPU/.test(after), `the badge says so ("${after.slice(0, 90)}")`);
    await page.screenshot({ path: join(artifacts, 'studio-device-loss.png') });
    check(errors.length === 0, `no page errors${errors.length ? `: ${errors.join(' | ').slice(0, 300)}` : ''}`);
  } finally {
    await browser.close();
    site.server.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return failures.length ? 1 : 0;
}

main().then((code) => {
  console.log(code === 0 ? '[device-loss] passed' : `[device-loss] ${failures.length} check(s) failed`);
  process.exit(code);
}, (e: unknown) => {
  console.error('[device-loss] fatal:', e);
  process.exit(1);
});

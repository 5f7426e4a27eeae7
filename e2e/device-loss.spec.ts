/**
 * A lost GPU device in the studio.
 *
 * The studio runs its jobs on the engine's WebGPU backend (here SwiftShader, allowed with `?gpu=software`).
 * Mid-way through a tuning run that checkpoints every 2 steps, the worker's GPU device is destroyed, as a
 * driver reset would; the run must finish on the CPU backend, resumed from its last checkpoint (not from
 * step 0), and the backend badge must say what happened. The emulator package is built in Node by the
 * same job the CLI runs (src/jobs), from the bundled demo model.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CpuBackend } from '../src/engine/cpu/backend';
import { buildEmulatorJob } from '../src/jobs/build-emulator';
import { TOKENIZER_FILES } from '../src/jobs/data';
import { loadHFModel } from '../src/model/hf';
import { nodeDirSource } from '../src/model/source';
import { zipEmulatorPackage } from '../src/ot/emulator/package';
import { artifacts, expect, repoRoot, siteUrl, test } from './fixtures';

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
  const built = await buildEmulatorJob(
    { spec: model.spec, weights: model.weights, modelId: 'demo', tokenizer: null, support: null, extraFiles },
    {
      method: 'drop',
      keep: 0.5,
      split: { bottom: 2, top: 2 },
      seqLen: 32,
      supportExamples: 1,
      batch: 1,
      backend: new CpuBackend(),
    },
  );
  const path = join(dir, 'demo-drop-emulator.zip');
  writeFileSync(path, zipEmulatorPackage(built.files));
  return path;
}

test('a lost GPU device mid-tuning: the run resumes on the CPU from its last checkpoint and the badge says so', async ({ studio }) => {
  test.setTimeout(600_000);
  const { page } = studio;
  const dir = mkdtempSync(join(tmpdir(), 'gradot-device-loss-'));
  try {
    const pkg = await emulatorZip(dir);
    await page.goto(siteUrl('index.html?gpu=software'));
    const badge = page.getByTestId('backend-badge');
    await page.waitForFunction(
      () => {
        const t = document.querySelector('[data-testid=backend-badge]')?.textContent;
        return t !== undefined && !t.includes('detecting');
      },
      null,
      { timeout: 60_000 },
    );
    const before = await badge.innerText();
    expect(before, 'the studio runs on WebGPU').toContain('WebGPU');

    await page.getByTestId('tab-data').click();
    await page.getByTestId('package-drop-input').setInputFiles(pkg);
    await page.locator('section[aria-label="Emulator package"] dl', { hasText: 'drop' }).waitFor({ timeout: 30_000 });
    const qa = readFileSync(join(repoRoot, 'public/data/imdb-sentiment-qa/valid.jsonl'), 'utf8').split('\n').slice(0, 40).join('\n');
    await page
      .getByTestId('dataset-drop-input')
      .setInputFiles({ name: 'train.jsonl', mimeType: 'application/x-ndjson', buffer: Buffer.from(qa) });
    await page.locator('.meta', { hasText: 'train.jsonl' }).first().waitFor({ timeout: 15_000 });
    const field = (label: string) =>
      page.locator('section[aria-label="Training"] label.field', { hasText: label }).locator('input').first();
    await field('lr').fill('0.001');
    await field('epochs').fill('1');
    await field('batch').fill('4');
    await field('seq len').fill('32');
    await field('checkpoint every').fill('2');
    await field('valid fraction').fill('0');
    await page.locator('section[aria-label="Training"]').getByRole('button', { name: 'Start' }).click();

    // Past the first checkpoint (step 2), on the GPU.
    await page.waitForFunction(
      () => {
        const t = document.querySelector('section[aria-label="Training"] .progress-line')?.textContent ?? '';
        const m = /step (\d+)\/(\d+)/.exec(t);
        return m !== null && Number(m[1]) >= 3 && Number(m[1]) < Number(m[2]) && t.toLowerCase().includes('webgpu');
      },
      null,
      { timeout: 300_000, polling: 100 },
    );

    const worker = page.workers().find((w) => w.url().includes('studio.worker'));
    expect(worker, 'the studio worker is reachable').toBeDefined();
    const destroyed = await worker!.evaluate(() => (self as unknown as { gradotLoseDevice(): Promise<boolean> }).gradotLoseDevice());
    expect(destroyed, 'device.destroy() forced mid-run').toBe(true);

    const done = page.locator('section[aria-label="Loss"] dl', { hasText: 'resumed from' });
    await done.waitFor({ timeout: 300_000 });
    const summary = (await done.innerText()).replace(/\s+/g, ' ');
    const resumedFrom = Number(/resumed from (\d+)/.exec(summary)?.[1] ?? 0);
    expect(resumedFrom, `it resumed from its last checkpoint, not from the start (${summary.slice(0, 200)})`).toBeGreaterThanOrEqual(2);
    expect(summary, 'and finished on the CPU backend').toMatch(/on cpu/i);
    const after = (await badge.innerText()).replace(/\s+/g, ' ');
    expect(after, 'the badge says the device was lost').toMatch(/device lost/i);
    expect(after, 'and that jobs run on the CPU').toMatch(/CPU/);
    await page.screenshot({ path: join(artifacts, 'studio-device-loss.png') });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

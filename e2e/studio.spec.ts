/**
 * Studio smoke test against the production build, in Debian's Chromium (SwiftShader WebGPU).
 *
 * Standalone (`npx tsx e2e/studio.spec.ts`), exits non-zero on failure:
 * - builds the site into a temp folder and serves it under /studio/ with a tiny static server (the built
 *   site must work from any sub-path);
 * - records every request the page and its workers make and fails on any that leaves the origin;
 * - checks the three views render, the backend badge resolves, the privacy statement is visible;
 * - drops bad files (truncated safetensors, non-JSON dataset, a zip that is not a package) and checks each
 *   shows an error naming the file while the app stays usable;
 * - opens a real (tiny) model folder and a real dataset and checks the inspect panel and preview table;
 * - the OT protocol on the bundled demo model (public/models/demo, fetched by "Open bundled demo"): GradOT
 *   compression with a support pass, package download, data owner opens it, tunes a few steps (pause,
 *   reload mid-training, resume from the OPFS checkpoint), evaluates Emulator ZS/FT on the first N test
 *   examples, downloads adapters; the model owner plugs them in (Full ZS / Plug-in) and both "Try it" boxes
 *   generate a few tokens through the ONNX export + transformers.js (onnxruntime-web wasm from this origin);
 * - the researcher grid runs the whole protocol (the five numbers, Full FT included) for two settings on the
 *   demo model.
 * Screenshots go to e2e/artifacts/ (gitignored).
 */
import { createServer, type Server } from 'node:http';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Page } from 'playwright-core';
import { build } from 'vite';
import { strToU8, zipSync } from 'fflate';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const artifacts = join(repo, 'e2e', 'artifacts');
const BASE = '/studio/';

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.jsonl': 'application/x-ndjson',
  '.wasm': 'application/wasm',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.txt': 'text/plain; charset=utf-8',
};

function serve(root: string): Promise<{ server: Server; origin: string }> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (!url.pathname.startsWith(BASE)) {
      res.writeHead(404).end('outside base path');
      return;
    }
    let rel = decodeURIComponent(url.pathname.slice(BASE.length));
    if (rel === '' || rel.endsWith('/')) rel += 'index.html';
    const file = normalize(join(root, rel));
    if (!file.startsWith(root + sep) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': MIME[extname(file)] ?? 'application/octet-stream' });
    res.end(readFileSync(file));
  });
  return new Promise((ok) => {
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      if (!addr || typeof addr === 'string') throw new Error('no address');
      ok({ server, origin: `http://127.0.0.1:${addr.port}` });
    });
  });
}

const failures: string[] = [];
function check(cond: unknown, what: string): void {
  if (cond) console.log(`  ok   ${what}`);
  else {
    console.log(`  FAIL ${what}`);
    failures.push(what);
  }
}

async function shot(page: Page, name: string): Promise<void> {
  // The header is sticky: scrolled, a full-page capture would paint it mid-page.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
  console.log(`  shot e2e/artifacts/${name}.png`);
}

/** Waits for an error toast mentioning `file`, then dismisses all toasts. */
async function expectErrorToast(page: Page, file: string, what: string): Promise<void> {
  const toast = page.locator('[data-testid=toast].error', { hasText: file });
  const seen = await toast.first().waitFor({ state: 'visible', timeout: 15_000 }).then(() => true, () => false);
  const text = seen ? (await toast.first().innerText()).replace(/\s+/g, ' ') : '';
  check(seen, `${what}: error toast names ${file}${seen ? ` ("${text.slice(0, 140)}")` : ''}`);
}

async function dismissToasts(page: Page): Promise<void> {
  // Always the first: closing one re-renders the list, so nth locators taken before would miss.
  const close = page.locator('[data-testid=toast] button.close');
  for (let i = 0; i < 10 && (await close.count()) > 0; i++) await close.first().click({ timeout: 2_000 }).catch(() => undefined);
}

async function main(): Promise<void> {
  mkdirSync(artifacts, { recursive: true });
  const out = mkdtempSync(join(tmpdir(), 'gradot-studio-dist-'));
  console.log('[studio] building into', out);
  await build({ root: repo, configFile: join(repo, 'vite.config.ts'), logLevel: 'warn', build: { outDir: out, emptyOutDir: true, sourcemap: false } });
  const { server, origin } = await serve(out);
  const userDataDir = mkdtempSync(join(tmpdir(), 'gradot-studio-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1440, height: 900 },
    args: [
      '--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  const offOrigin: string[] = [];
  const pageErrors: string[] = [];
  const consoleErrors: string[] = [];
  context.on('request', (r) => {
    const u = r.url();
    if (u.startsWith('data:') || u.startsWith('blob:')) return;
    if (!u.startsWith(`${origin}/`)) offOrigin.push(u);
  });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('worker', (w) => w.on('console', (m) => m.type() === 'error' && consoleErrors.push(`[worker] ${m.text()}`)));

    console.log(`[studio] ${origin}${BASE}`);
    await page.goto(`${origin}${BASE}`, { waitUntil: 'load' });
    await page.getByText('GradOT Studio', { exact: true }).waitFor({ timeout: 15_000 });
    check(await page.getByTestId('privacy').isVisible(), 'privacy statement visible');
    check((await page.getByTestId('privacy').innerText()).includes('Nothing leaves this machine'), 'privacy statement text');

    const badge = page.getByTestId('backend-badge');
    await page.waitForFunction(() => !document.querySelector('[data-testid=backend-badge]')?.textContent?.includes('detecting'), null, { timeout: 60_000 }).catch(() => undefined);
    const badgeText = (await badge.innerText()).replace(/\s+/g, ' ');
    check(/WebGPU ·|CPU fallback/.test(badgeText), `backend badge resolved ("${badgeText.slice(0, 100)}")`);

    // ---- Model owner
    check(await page.getByTestId('view-model').isVisible(), 'model owner view renders');
    await page.getByText('Build emulator', { exact: false }).first().waitFor({ timeout: 10_000 });
    await shot(page, 'studio-model-owner-empty');

    // Bad file 1: a truncated safetensors with its config, picked as a model folder.
    const cfg = readFileSync(join(repo, 'src/model/__fixtures__/gpt2/config.json'));
    const ds0 = readFileSync(join(repo, 'public/data/imdb-sentiment-mc/valid.jsonl'));
    const full = readFileSync(join(repo, 'src/model/__fixtures__/gpt2/model.safetensors'));
    await page.getByTestId('model-drop-input').setInputFiles([
      { name: 'config.json', mimeType: 'application/json', buffer: cfg },
      { name: 'model.safetensors', mimeType: 'application/octet-stream', buffer: full.subarray(0, Math.floor(full.length / 2)) },
    ]);
    await expectErrorToast(page, 'model.safetensors', 'truncated safetensors');
    await shot(page, 'studio-error-truncated-safetensors');
    await dismissToasts(page);

    // Bad file 2: a real drag-and-drop of a file that is not a model at all.
    await page.evaluate(() => {
      const dt = new DataTransfer();
      dt.items.add(new File(['hello'], 'notes.txt', { type: 'text/plain' }));
      document.querySelector('[data-testid=model-drop]')!.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    });
    await expectErrorToast(page, 'notes.txt', 'dropped non-model file');
    await dismissToasts(page);

    // A real model folder (the tiny GPT-2 test fixture) still opens after the errors.
    await page.getByTestId('model-drop-input').setInputFiles([
      { name: 'config.json', mimeType: 'application/json', buffer: cfg },
      { name: 'model.safetensors', mimeType: 'application/octet-stream', buffer: full },
    ]);
    const inspect = page.locator('section[aria-label^="Inspect ·"]');
    const opened = await inspect.waitFor({ timeout: 15_000 }).then(() => true, () => false);
    check(opened, 'tiny gpt2 folder opens in the inspect panel');
    if (opened) {
      const text = await inspect.innerText();
      check(/gpt2/.test(text) && /parameters/.test(text), 'inspect shows architecture and parameter counts');
    }
    await dismissToasts(page);
    await shot(page, 'studio-model-owner-inspect');

    // Compress it for real (svd baseline: no tokenizer needed; the fixture has 2 blocks, so adapters 0:1).
    await page.getByText('SVD', { exact: true }).click();
    const numIn = (label: string) => page.locator('label.field').filter({ has: page.getByText(label, { exact: true }) }).locator('input').first();
    await numIn('adapters bottom').fill('0');
    await numIn('top').fill('1');
    await page.getByRole('button', { name: /Build emulator/ }).click();
    const results = page.locator('section[aria-label^="Results ·"]');
    const compressed = await results.waitFor({ timeout: 60_000 }).then(() => true, () => false);
    check(compressed, 'svd compression of the fixture produces a results panel');
    let pkgPath: string | null = null;
    let gradotPkgPath: string | null = null;
    let adapterPath: string | null = null;
    if (compressed) {
      // The readings sit in the "details" disclosure (closed, so textContent rather than innerText).
      const text = (await results.textContent()) ?? '';
      check(/middle blocks/.test(text) && /reading: /.test(text), 'results show the budget and the readings used');
      await page.locator('.subhead', { hasText: 'Singular values' }).waitFor({ timeout: 20_000 }).catch(() => undefined);
      await page.waitForTimeout(500);
      await shot(page, 'studio-model-owner-results');
      const dlp = page.waitForEvent('download', { timeout: 20_000 }).catch(() => null);
      await results.getByRole('button', { name: /Download emulator package/ }).click();
      const d = await dlp;
      if (d) {
        pkgPath = join(artifacts, d.suggestedFilename());
        await d.saveAs(pkgPath);
        check(statSync(pkgPath).size > 1000 && d.suggestedFilename().endsWith('.zip'), `emulator package downloaded (${d.suggestedFilename()})`);
      } else check(false, 'emulator package downloads');
    }

    const EVAL_N = 16;
    const testQaAll = readFileSync(join(repo, 'public/data/imdb-sentiment-qa/test.jsonl'));
    /** Every row of a metrics table reports n = EVAL_N. */
    const nColumn = async (table: ReturnType<Page['locator']>): Promise<boolean> => {
      const ns = await table.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.querySelectorAll('td')[6]?.textContent ?? ''));
      return ns.length > 0 && ns.every((n) => n === String(EVAL_N));
    };
    /** The "Try it" box: a few greedy tokens through the ONNX export + transformers.js (local wasm). */
    const tryIt = async (testId: string, what: string): Promise<void> => {
      const box = page.getByTestId(testId);
      await box.scrollIntoViewIfNeeded();
      await box.locator('label.field', { hasText: 'max new tokens' }).locator('input').fill('8');
      const tg = Date.now();
      await box.getByRole('button', { name: 'Generate' }).click();
      const done = await page.getByTestId(`${testId}-meta`).waitFor({ timeout: 120_000 }).then(() => true, () => false);
      const out = done ? await page.getByTestId(`${testId}-output`).innerText() : '';
      const prompt = await page.getByTestId(`${testId}-prompt`).inputValue();
      const generated = out.startsWith(prompt) ? out.slice(prompt.length) : '';
      check(done && generated.trim().length > 0, `try it (${what}) generates text: "${prompt}" → ${JSON.stringify(generated.slice(0, 80))} (${((Date.now() - tg) / 1000).toFixed(1)}s)`);
      if (done) console.log(`  info ${(await page.getByTestId(`${testId}-meta`).innerText()).replace(/\s+/g, ' ')}`);
    };

    // GradOT end to end on the bundled demo model (public/models/demo, fetched from the site under /studio/).
    const demoInspect = page.locator('section[aria-label^="Inspect · demo"]');
    const openDemo = async (): Promise<boolean> => {
      await page.getByTestId('open-demo').waitFor({ timeout: 10_000 });
      await page.waitForFunction(() => !(document.querySelector('[data-testid=open-demo]') as HTMLButtonElement | null)?.disabled, null, { timeout: 15_000 }).catch(() => undefined);
      await page.getByTestId('open-demo').click();
      return demoInspect.filter({ hasText: 'llama' }).waitFor({ timeout: 60_000 }).then(() => true, () => false);
    };
    const demoOpened = await openDemo();
    check(demoOpened, 'the bundled demo model opens from the site (Open bundled demo)');
    if (demoOpened) {
      const text = (await demoInspect.innerText()).replace(/\s+/g, ' ');
      check(/layers 8 hidden 256/.test(text) && /F16/.test(text), `inspect shows the demo: 8 layers, d=256, F16 (${text.slice(0, 140)})`);
    }
    await dismissToasts(page);
    await page.getByText('GradOT', { exact: true }).click();
    await numIn('adapters bottom').fill('1');
    await numIn('top').fill('1');
    await numIn('support examples').fill('8');
    await numIn('context').fill('32');
    await page.getByTestId('support-drop-input').setInputFiles({ name: 'support.jsonl', mimeType: 'application/x-ndjson', buffer: ds0 });
    await page.locator('.drop-label', { hasText: 'support.jsonl' }).waitFor({ timeout: 10_000 }).catch(() => undefined);
    const t0 = Date.now();
    await page.getByRole('button', { name: /Build emulator \(gradot\)/ }).click();
    // Either the results or an error toast (fail fast instead of waiting out the timeout).
    await page.locator('section[aria-label^="Results · gradot"], [data-testid=toast].error').first().waitFor({ timeout: 240_000 }).catch(() => undefined);
    const gradotDone = await page.locator('section[aria-label^="Results · gradot"]').isVisible();
    check(gradotDone, `gradot compression with a support pass finishes (${((Date.now() - t0) / 1000).toFixed(1)}s)`);
    if (gradotDone) {
      const text = await page.locator('section[aria-label^="Results · gradot"]').innerText();
      check(/support pass\s+\d+ loss tokens/.test(text), 'results report the support pass');
      await page.waitForTimeout(800);
      await shot(page, 'studio-model-owner-gradot');
      const dlg = page.waitForEvent('download', { timeout: 20_000 }).catch(() => null);
      await page.locator('section[aria-label^="Results · gradot"]').getByRole('button', { name: /Download emulator package/ }).click();
      const dg = await dlg;
      if (dg) {
        gradotPkgPath = join(artifacts, dg.suggestedFilename());
        await dg.saveAs(gradotPkgPath);
      }
      check(gradotPkgPath !== null, 'gradot emulator package downloaded');
    } else {
      await shot(page, 'studio-model-owner-gradot-failed');
    }
    await dismissToasts(page);

    // ---- Data owner
    await page.getByTestId('tab-data').click();
    check(await page.getByTestId('view-data').isVisible(), 'data owner view renders');
    // Bad file 3: a dataset that is not JSON Lines.
    await page.getByTestId('dataset-drop-input').setInputFiles({ name: 'bad.jsonl', mimeType: 'application/x-ndjson', buffer: Buffer.from('{"text": "ok"}\nthis is not json\n') });
    await expectErrorToast(page, 'bad.jsonl', 'non-JSON dataset');
    check(await page.getByTestId('dataset-issues').isVisible(), 'dataset error shown inline');
    await shot(page, 'studio-error-bad-dataset');
    await dismissToasts(page);
    // Bad file 4: a zip that is not an emulator package.
    await page.getByTestId('package-drop-input').setInputFiles({ name: 'other.zip', mimeType: 'application/zip', buffer: Buffer.from('PK\u0003\u0004 definitely not a zip') });
    await expectErrorToast(page, 'other.zip', 'bogus emulator package');
    await dismissToasts(page);
    // Bad file 5: a zip that looks like a package but is not a GradOT emulator.
    const fake = zipSync({ 'emulator.json': strToU8(JSON.stringify({ format: 'some-other-tool', version: 1 })), 'emulator.safetensors': new Uint8Array(full) });
    await page.getByTestId('package-drop-input').setInputFiles({ name: 'foreign-package.zip', mimeType: 'application/zip', buffer: Buffer.from(fake) });
    await expectErrorToast(page, 'foreign-package.zip', 'package from another tool');
    await dismissToasts(page);
    // The package the model owner downloaded opens here.
    if (pkgPath) {
      await page.getByTestId('package-drop-input').setInputFiles(pkgPath);
      const ok = await page.locator('section[aria-label="Emulator package"] dl').waitFor({ timeout: 15_000 }).then(() => true, () => false);
      check(ok, 'the downloaded emulator package opens in the data owner view');
    }
    // A valid dataset previews after the errors (app still usable).
    const ds = ds0;
    await page.getByTestId('dataset-drop-input').setInputFiles({ name: 'valid.jsonl', mimeType: 'application/x-ndjson', buffer: ds });
    const table = page.locator('table.preview');
    const previewed = await table.waitFor({ timeout: 15_000 }).then(() => true, () => false);
    check(previewed, 'valid dataset shows a preview table');
    if (previewed) check((await table.locator('tbody tr').count()) > 0, 'preview table has rows');
    await shot(page, 'studio-data-owner');

    // Offsite tuning on the gradot emulator (it carries the tokenizer), interrupted by a reload and resumed
    // from its OPFS checkpoint.
    if (gradotPkgPath) {
      await page.getByTestId('package-drop-input').setInputFiles(gradotPkgPath);
      await page.locator('section[aria-label="Emulator package"] dl', { hasText: 'gradot' }).waitFor({ timeout: 15_000 }).catch(() => undefined);
      const qa = readFileSync(join(repo, 'public/data/imdb-sentiment-qa/valid.jsonl'), 'utf8').split('\n').slice(0, 44).join('\n');
      await page.getByTestId('dataset-drop-input').setInputFiles({ name: 'train.jsonl', mimeType: 'application/x-ndjson', buffer: Buffer.from(qa) });
      await page.locator('.meta', { hasText: 'train.jsonl' }).first().waitFor({ timeout: 15_000 }).catch(() => undefined);
      const tnum = (label: string) => page.locator('section[aria-label="Training"] label.field', { hasText: label }).locator('input').first();
      await tnum('lr').fill('0.001');
      await tnum('epochs').fill('2');
      await tnum('batch').fill('4');
      await tnum('seq len').fill('32');
      await tnum('checkpoint every').fill('2');
      await tnum('valid fraction').fill('0.1');
      await page.locator('section[aria-label="Training"]').getByRole('button', { name: 'Start' }).click();
      const midway = await page.waitForFunction(() => {
        const m = /step (\d+)\/(\d+)/.exec(document.querySelector('section[aria-label="Training"] .progress-line')?.textContent ?? '');
        return m !== null && Number(m[1]) >= 5 && Number(m[1]) < Number(m[2]);
      }, null, { timeout: 180_000, polling: 100 }).then(() => true, () => false);
      check(midway, 'training reports steps (live progress)');
      // Pause holds the step counter; Resume continues.
      const stepNow = async () => Number(/step (\d+)\//.exec((await page.locator('section[aria-label="Training"] .progress-line').innerText()))?.[1] ?? -1);
      await page.locator('section[aria-label="Training"]').getByRole('button', { name: 'Pause' }).click();
      await page.waitForTimeout(1500);
      const held = await stepNow();
      await page.waitForTimeout(2500);
      check(held >= 0 && (await stepNow()) === held, `pause holds training at step ${held}`);
      await page.locator('section[aria-label="Training"]').getByRole('button', { name: 'Resume' }).click();
      const moved = await page.waitForFunction((h) => {
        const m = /step (\d+)\//.exec(document.querySelector('section[aria-label="Training"] .progress-line')?.textContent ?? '');
        return m !== null && Number(m[1]) > h;
      }, held, { timeout: 60_000, polling: 100 }).then(() => true, () => false);
      check(moved, 'resume continues training');
      await shot(page, 'studio-data-owner-training');
      await page.reload({ waitUntil: 'load' });
      await page.getByTestId('tab-data').click();
      const rb = page.getByTestId('resume-banner');
      const offered = await rb.waitFor({ timeout: 15_000 }).then(() => true, () => false);
      check(offered, `reload mid-training offers resume (${offered ? (await rb.innerText()).replace(/\s+/g, ' ').slice(0, 90) : 'no banner'})`);
      if (offered) {
        await shot(page, 'studio-resume-after-reload');
        await rb.getByRole('button', { name: 'Resume' }).click();
        const fin = page.locator('section[aria-label="Loss"] dl', { hasText: 'resumed from' });
        const resumed = await fin.waitFor({ timeout: 240_000 }).then(() => true, () => false);
        check(resumed, 'the resumed run finishes and says which step it continued from');
        if (resumed) console.log(`  info ${(await fin.innerText()).replace(/\s+/g, ' ').slice(0, 200)}`);
        await shot(page, 'studio-data-owner-tuned');

        // Evaluate Emulator ZS and FT on held-out records, then export the adapters.
        // The whole test file, evaluated on its first EVAL_N examples (the UI's examples field).
        await page.getByTestId('eval-drop-input').setInputFiles({ name: 'test.jsonl', mimeType: 'application/x-ndjson', buffer: testQaAll });
        await page.locator('.drop-label', { hasText: 'evaluation file: test.jsonl' }).waitFor({ timeout: 10_000 }).catch(() => undefined);
        await page.locator('section[aria-label="Evaluate and export"] label.field', { hasText: 'examples' }).locator('input').fill(String(EVAL_N));
        await page.getByRole('button', { name: /Evaluate emulator/ }).click();
        const metrics = page.locator('section[aria-label="Evaluate and export"] table.metrics');
        const evaluated = await metrics.waitFor({ timeout: 120_000 }).then(() => true, () => false);
        check(evaluated && !(await metrics.innerText()).includes('not run'), 'Emulator ZS and Emulator FT evaluated');
        if (evaluated) check(await nColumn(metrics), `evaluation used the first ${EVAL_N} test examples (examples field)`);
        if (evaluated) console.log(`  info ${(await metrics.innerText()).replace(/\s+/g, ' ').slice(0, 220)}`);
        const dla = page.waitForEvent('download', { timeout: 30_000 }).catch(() => null);
        await page.getByRole('button', { name: 'Download adapters (.safetensors)' }).click();
        const ad = await dla;
        if (ad) {
          adapterPath = join(artifacts, ad.suggestedFilename());
          await ad.saveAs(adapterPath);
        }
        check(adapterPath !== null, 'adapters download as a zip');
        await shot(page, 'studio-data-owner-evaluated');
        await tryIt('try-data', 'data owner: emulator + tuned adapters');
        await shot(page, 'studio-data-owner-try-it');
      }
    }

    // ---- Model owner again: plug the returned adapters into the full model (reopened after the reload).
    if (adapterPath) {
      await page.getByTestId('tab-model').click();
      check(await openDemo(), 'the demo model reopens after the reload');
      await page.getByTestId('adapter-drop-input').setInputFiles(adapterPath);
      await page.locator('.drop-label', { hasText: 'adapter layout' }).waitFor({ timeout: 15_000 }).catch(() => undefined);
      await page.getByTestId('plugin-task-drop-input').setInputFiles({ name: 'test.jsonl', mimeType: 'application/x-ndjson', buffer: testQaAll });
      await page.locator('.drop-label', { hasText: 'task: test.jsonl' }).waitFor({ timeout: 10_000 }).catch(() => undefined);
      await page.locator('section[aria-label="Plug in returned adapters"] label.field', { hasText: 'examples' }).locator('input').fill(String(EVAL_N));
      await page.getByRole('button', { name: 'Plug in and evaluate' }).click();
      const pm = page.locator('section[aria-label="Plug in returned adapters"] table.metrics');
      const plugged = await pm.waitFor({ timeout: 120_000 }).then(() => true, () => false);
      check(plugged, 'returned adapters plug into the demo model: Full ZS and Plug-in evaluated');
      if (plugged) {
        console.log(`  info ${(await pm.innerText()).replace(/\s+/g, ' ').slice(0, 220)}`);
        check(await nColumn(pm), `plug-in evaluation used the first ${EVAL_N} test examples`);
      }
      await shot(page, 'studio-model-owner-plugin');
      await tryIt('try-model', 'model owner: plug-in model');
      await shot(page, 'studio-model-owner-try-it');
      // Bad file 7: those adapters dropped on a different model (the gpt2 fixture) are refused by name.
      await page.getByTestId('model-drop-input').setInputFiles([
        { name: 'config.json', mimeType: 'application/json', buffer: cfg },
        { name: 'model.safetensors', mimeType: 'application/octet-stream', buffer: full },
      ]);
      await page.locator('section[aria-label^="Inspect ·"]', { hasText: 'gpt2' }).waitFor({ timeout: 15_000 }).catch(() => undefined);
      await page.getByTestId('adapter-drop-input').setInputFiles(adapterPath);
      await expectErrorToast(page, 'adapter.safetensors', 'adapters of another model');
      await dismissToasts(page);
    }

    // ---- Researcher
    await dismissToasts(page);
    await page.getByTestId('tab-research').click();
    check(await page.getByTestId('view-research').isVisible(), 'researcher view renders');
    await shot(page, 'studio-researcher');

    // The whole protocol for two settings side by side (gradot and drop at keep 0.3) on the demo model, Full FT
    // included: the five numbers per run, Δ, compression ratio, Pareto points.
    await page.getByTestId('tab-model').click();
    check(await openDemo(), 'the demo model opens for the researcher grid');
    await page.getByTestId('tab-research').click();
    const grid = page.locator('section[aria-label="Settings grid"]');
    const fullFtBox = grid.locator('label', { hasText: 'Full FT' }).locator('input[type=checkbox]');
    if (!(await fullFtBox.isChecked())) await fullFtBox.check();
    await grid.locator('label.chip', { hasText: 'svd' }).click();
    const gnum = (label: string) => grid.locator('label.field').filter({ has: page.getByText(label, { exact: true }) }).locator('input').first();
    await gnum('keep').fill('0.3');
    await gnum('L').fill('1');
    await gnum('R').fill('1');
    await gnum('lr').fill('0.001');
    await gnum('seq len').fill('32');
    await gnum('support ex.').fill('8');
    const qaLines = readFileSync(join(repo, 'public/data/imdb-sentiment-qa/valid.jsonl'), 'utf8').split('\n');
    await page.getByTestId('task-drop-input').setInputFiles([
      { name: 'train.jsonl', mimeType: 'application/x-ndjson', buffer: Buffer.from(qaLines.slice(0, 20).join('\n')) },
      { name: 'test.jsonl', mimeType: 'application/x-ndjson', buffer: Buffer.from(qaLines.slice(100, 108).join('\n')) },
    ]);
    await grid.locator('.drop-label', { hasText: 'task: train.jsonl' }).waitFor({ timeout: 10_000 }).catch(() => undefined);
    const runBtn = grid.getByRole('button', { name: /Run 2 settings/ });
    check(await runBtn.isEnabled(), 'protocol grid of 2 settings is ready to run');
    const tp = Date.now();
    await runBtn.click();
    const browserRows = page.locator('[data-testid=runs-table] tbody tr', { hasText: 'browser' });
    const ran = await page.waitForFunction(() => document.querySelectorAll('[data-testid=runs-table] tbody tr').length >= 2 &&
      [...document.querySelectorAll('[data-testid=runs-table] tbody tr')].filter((r) => r.textContent?.includes('browser')).length >= 2,
      null, { timeout: 480_000, polling: 500 }).then(() => true, () => false);
    check(ran, `the OT protocol ran for gradot and drop on the demo model (${((Date.now() - tp) / 1000).toFixed(0)}s)`);
    if (ran) {
      for (const r of await browserRows.all()) console.log(`  info ${(await r.innerText()).replace(/\s+/g, ' ')}`);
      // Five numbers (Full ZS, Emulator ZS, Emulator FT, Plug-in, Full FT) in every browser row.
      const cells = await browserRows.first().locator('td.num').allInnerTexts();
      // td.num cells: keep, λ, then Full ZS, Emulator ZS, Emulator FT, Plug-in, Full FT, Δ, ratio.
      const five = cells.slice(2, 7).map((c) => c.trim());
      check(five.length === 5 && five.every((c) => /^-?\d+(\.\d+)?$/.test(c)) && (await browserRows.first().innerText()).includes('demo'), `a demo run row shows the five numbers (${five.join(' ')})`);
    }
    await dismissToasts(page);
    await shot(page, 'studio-researcher-protocol');
    // A bundled task folder loads from the site itself (same origin).
    await grid.getByRole('button', { name: 'imdb-sentiment-mc' }).click();
    const bundled = await grid.locator('.drop-label', { hasText: 'task: train.jsonl, test.jsonl, valid.jsonl' }).waitFor({ timeout: 15_000 }).then(() => true, () => false);
    check(bundled, 'bundled task (data/imdb-sentiment-mc) loads train/test/valid');

    // Runs table + Pareto from an imported file. These numbers are a test fixture (origin "import"), not results.
    const fixtureRuns = {
      format: 'gradot-studio-runs',
      version: 1,
      runs: [0.2, 0.3, 0.5].map((keep, i) => ({
        id: `fixture-${i}`, model: 'fixture', task: 'fixture', metric: 'acc',
        setting: { method: 'gradot', keep, lambdaAttn: 1, lambdaMlp: 1, adapters: { bottom: 2, top: 2 } },
        fullZS: 0.5, emulatorZS: 0.4 + 0.05 * i, emulatorFT: 0.55 + 0.05 * i, plugIn: 0.7 + 0.02 * i, fullFT: 0.8, compressionRatio: 0.4 + 0.2 * i,
      })),
    };
    await page.locator('label.button:has-text("Import JSON") input').setInputFiles({ name: 'runs.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(fixtureRuns)) });
    const rows = page.locator('[data-testid=runs-table] tbody tr', { hasText: 'import' });
    const imported = await rows.first().waitFor({ timeout: 10_000 }).then(() => true, () => false);
    check(imported && (await rows.count()) === 3, 'imported runs join the runs table');
    const totalRuns = await page.locator('[data-testid=runs-table] tbody tr').count();
    check(await page.locator('section[aria-label^="Privacy"] [data-testid=plane-chart] svg').count() > 0, 'privacy-utility plane renders');
    const dl = page.waitForEvent('download', { timeout: 10_000 }).catch(() => null);
    await page.getByRole('button', { name: 'Export CSV' }).click();
    const download = await dl;
    if (download) {
      const p = join(artifacts, 'runs.csv');
      await download.saveAs(p);
      const csv = readFileSync(p, 'utf8').trim().split('\n');
      check(csv.length === totalRuns + 1 && csv[0]!.startsWith('id,createdAt,model'), 'CSV export has a header and one line per run');
    } else check(false, 'CSV export downloads a file');
    await shot(page, 'studio-researcher-runs');
    // Bad file 6: an import that is not JSON.
    await page.locator('label.button:has-text("Import JSON") input').setInputFiles({ name: 'broken-runs.json', mimeType: 'application/json', buffer: Buffer.from('{ nope') });
    await expectErrorToast(page, 'broken-runs.json', 'broken runs import');
    await dismissToasts(page);

    // Resume banner: a run checkpointed in OPFS (src/ot checkpoint-store manifest under gradot-runs/<runId>,
    // the layout src/store/jobs-api.ts documents) is offered after a reload.
    await page.evaluate(async () => {
      const root = await navigator.storage.getDirectory();
      const dir = await (await root.getDirectoryHandle('gradot-runs', { create: true })).getDirectoryHandle('run-e2e', { create: true });
      const manifest = {
        format: 'gradot-checkpoints', version: 1, nextSeq: 2, latest: 'step-7',
        checkpoints: [{ id: 'step-7', seq: 1, dir: 'checkpoints/1-step-7', files: [], committedAt: new Date().toISOString(),
          meta: { runId: 'run-e2e', step: 7, totalSteps: 20, packageName: 'demo-emulator.zip', datasetName: 'train.jsonl' } }],
      };
      const w = await (await dir.getFileHandle('manifest.json', { create: true })).createWritable();
      await w.write(JSON.stringify(manifest));
      await w.close();
    });
    await page.reload({ waitUntil: 'load' });
    await page.getByTestId('tab-data').click();
    const banner = page.getByTestId('resume-banner');
    const bannerSeen = await banner.waitFor({ timeout: 10_000 }).then(() => true, () => false);
    check(bannerSeen && (await banner.innerText()).includes('step 7/20'), 'resume banner offers the OPFS checkpoint after a reload');
    await shot(page, 'studio-resume-banner');
    await page.getByRole('button', { name: 'Discard' }).click();
    check(await banner.waitFor({ state: 'detached', timeout: 5_000 }).then(() => true, () => false), 'discarding the checkpoint hides the banner');

    // Back to the first view: still alive.
    await page.getByTestId('tab-model').click();
    check(await page.getByTestId('view-model').isVisible(), 'tabs still switch after the errors');

    // Badge tooltip (hover) for the screenshot.
    await badge.hover();
    await page.waitForTimeout(200);
    await page.screenshot({ path: join(artifacts, 'studio-badge-tooltip.png'), clip: { x: 700, y: 0, width: 740, height: 240 } });

    // Without --enable-unsafe-webgpu headless Chromium gives no adapter: the badge must explain the CPU fallback.
    const noGpu = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
      headless: true,
      args: ['--headless=new', '--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const p2 = await noGpu.newPage({ viewport: { width: 1440, height: 900 } });
      p2.on('request', (r) => {
        const u = r.url();
        if (!u.startsWith('data:') && !u.startsWith('blob:') && !u.startsWith(`${origin}/`)) offOrigin.push(u);
      });
      await p2.goto(`${origin}${BASE}`, { waitUntil: 'load' });
      const b2 = p2.getByTestId('backend-badge');
      await p2.waitForFunction(() => !document.querySelector('[data-testid=backend-badge]')?.textContent?.includes('detecting'), null, { timeout: 30_000 }).catch(() => undefined);
      const t2 = (await b2.innerText()).replace(/\s+/g, ' ');
      check(/CPU fallback|WebGPU ·/.test(t2), `badge without --enable-unsafe-webgpu: "${t2.slice(0, 80)}"`);
      await b2.hover();
      await p2.waitForTimeout(200);
      await p2.screenshot({ path: join(artifacts, 'studio-badge-cpu-fallback.png'), clip: { x: 700, y: 0, width: 740, height: 200 } });
    } finally {
      await noGpu.close();
    }

    check(pageErrors.length === 0, `no uncaught page errors${pageErrors.length ? `: ${pageErrors.join(' | ')}` : ''}`);
    if (consoleErrors.length) console.log(`  note console errors: ${consoleErrors.slice(0, 5).join(' | ')}`);
    check(offOrigin.length === 0, `no request left the origin${offOrigin.length ? `: ${offOrigin.slice(0, 5).join(', ')}` : ''}`);
  } finally {
    await context.close().catch(() => undefined);
    server.close();
    rmSync(userDataDir, { recursive: true, force: true });
    rmSync(out, { recursive: true, force: true });
  }
  if (failures.length) {
    console.log(`[studio] ${failures.length} check(s) failed`);
    process.exit(1);
  }
  console.log('[studio] all checks passed');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

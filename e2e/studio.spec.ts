// The studio as shipped (the production build under a sub-path, see playwright.config.ts) in Debian's
// Chromium with SwiftShader WebGPU. Every test fails on a request that leaves the site's origin or an
// uncaught page error (fixtures.ts). Screenshots go to e2e/artifacts/ (gitignored).
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { strToU8, zipSync } from 'fflate';
import type { Locator, Page } from '@playwright/test';
import {
  type Studio,
  artifacts,
  badgeText,
  chromiumLaunchOptions,
  dismissToasts,
  expect,
  expectErrorToast,
  numberField,
  openDemo,
  openStudio,
  repoRoot,
  shot,
  siteOrigin,
  siteUrl,
  test,
} from './fixtures';

const gpt2Config = readFileSync(join(repoRoot, 'src/model/__fixtures__/gpt2/config.json'));
const gpt2Weights = readFileSync(join(repoRoot, 'src/model/__fixtures__/gpt2/model.safetensors'));
const gpt2Folder = [
  { name: 'config.json', mimeType: 'application/json', buffer: gpt2Config },
  { name: 'model.safetensors', mimeType: 'application/octet-stream', buffer: gpt2Weights },
];
const mcValid = readFileSync(join(repoRoot, 'public/data/imdb-sentiment-mc/valid.jsonl'));
const qaTest = readFileSync(join(repoRoot, 'public/data/imdb-sentiment-qa/test.jsonl'));
const qaValidLines = readFileSync(join(repoRoot, 'public/data/imdb-sentiment-qa/valid.jsonl'), 'utf8').split('\n');
const jsonl = (name: string, buffer: Buffer) => ({ name, mimeType: 'application/x-ndjson', buffer });

/** Evaluations run on the first EVAL_N examples of the test file (the UI's examples field). */
const EVAL_N = 16;

/** Every row of a metrics table reports n = EVAL_N. */
async function expectNColumn(table: Locator): Promise<void> {
  const ns = await table.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.querySelectorAll('td')[6]?.textContent ?? ''));
  expect(ns.length, 'metrics rows').toBeGreaterThan(0);
  expect(ns, `every row evaluated on the first ${EVAL_N} examples`).toEqual(ns.map(() => String(EVAL_N)));
}

/**
 * The "Try it" box: a few greedy tokens through the ONNX export + transformers.js (local wasm). The tokens
 * are counted, not judged: 20 steps of adapter tuning on an emulator built to hide the model (balanced λ)
 * may leave greedy decoding on whitespace, in the emulator and in the plug-in model alike.
 */
async function tryIt(page: Page, testId: string): Promise<void> {
  const box = page.getByTestId(testId);
  await box.scrollIntoViewIfNeeded();
  await box.locator('label.field', { hasText: 'max new tokens' }).locator('input').fill('8');
  await box.getByRole('button', { name: 'Generate' }).click();
  await expect(page.getByTestId(`${testId}-meta`)).toBeVisible({ timeout: 120_000 });
  const out = await page.getByTestId(`${testId}-output`).innerText();
  const prompt = await page.getByTestId(`${testId}-prompt`).inputValue();
  expect(out.startsWith(prompt), 'the output continues the prompt').toBe(true);
  const meta = await page.getByTestId(`${testId}-meta`).innerText();
  expect(Number(/(\d+) new tokens/.exec(meta)?.[1] ?? 0), `new tokens generated ("${meta}")`).toBeGreaterThan(0);
  console.log(`  ${testId}: ${JSON.stringify(out.slice(prompt.length))} (${meta.replace(/\s+/g, ' ')})`);
}

test.describe('studio shell', () => {
  test('the three views, the privacy statement and a resolved backend badge', async ({ studio: { page } }) => {
    await expect(page.getByTestId('privacy')).toBeVisible();
    await expect(page.getByTestId('privacy')).toContainText('Nothing leaves this machine');
    expect(await badgeText(page)).toMatch(/WebGPU ·|CPU fallback/);
    // What runs: SwiftShader is skipped for the CPU here, so the CPU pool's threads and kernel (the worker is
    // cross-origin isolated: more than one thread when the machine has the cores).
    expect(await badgeText(page)).toMatch(
      /Runs on CPU · \d+ threads? (\(.+\) )?· (relaxed SIMD|SIMD|plain JS)|f16: (yes|no) · subgroups: (yes|no)/,
    );
    await expect(page.getByTestId('view-model')).toBeVisible();
    await page.getByText('Build emulator', { exact: false }).first().waitFor({ timeout: 10_000 });
    await shot(page, 'studio-model-owner-empty');
    await page.getByTestId('tab-data').click();
    await expect(page.getByTestId('view-data')).toBeVisible();
    await page.getByTestId('tab-research').click();
    await expect(page.getByTestId('view-research')).toBeVisible();
    await shot(page, 'studio-researcher');
    await page.getByTestId('tab-model').click();
    await expect(page.getByTestId('view-model')).toBeVisible();
    // Badge tooltip (hover) for the screenshot.
    await page.getByTestId('backend-badge').hover();
    await page.waitForTimeout(200);
    await page.screenshot({ path: join(artifacts, 'studio-badge-tooltip.png'), clip: { x: 700, y: 0, width: 740, height: 240 } });
  });

  test('without --enable-unsafe-webgpu the badge explains the CPU fallback', async ({ playwright }) => {
    const noGpu = await playwright.chromium.launch(chromiumLaunchOptions({ webgpu: false }));
    try {
      const page = await noGpu.newPage({ viewport: { width: 1440, height: 900 } });
      const offOrigin: string[] = [];
      page.on('request', (r) => {
        const u = r.url();
        if (!u.startsWith('data:') && !u.startsWith('blob:') && !u.startsWith(`${siteOrigin()}/`)) offOrigin.push(u);
      });
      await page.goto(siteUrl(), { waitUntil: 'load' });
      expect(await badgeText(page, 30_000)).toMatch(/CPU fallback|WebGPU ·/);
      expect(await badgeText(page)).toMatch(/Runs on CPU · \d+ threads? (\(.+\) )?· (relaxed SIMD|SIMD|plain JS)/);
      await page.getByTestId('backend-badge').hover();
      await page.waitForTimeout(200);
      await page.screenshot({ path: join(artifacts, 'studio-badge-cpu-fallback.png'), clip: { x: 700, y: 0, width: 740, height: 200 } });
      expect(offOrigin, 'no request left the origin').toEqual([]);
    } finally {
      await noGpu.close();
    }
  });

  test('with ?gpu=software the badge says which WebGPU kernel variants run (f16, subgroups)', async ({ studio: { page } }) => {
    await page.goto(siteUrl('index.html?gpu=software'));
    // SwiftShader: subgroups (size 4, the subgroup matmul runs), no shader-f16.
    expect(await badgeText(page, 60_000)).toMatch(/Runs on WebGPU · .+\(software\) · f16: no · subgroups: yes/);
    await page.getByTestId('backend-badge').hover();
    await expect(page.getByTestId('backend-run-line')).toHaveText(/^webgpu \(browser, .+, software adapter, f16: no, subgroups: yes\)$/);
    await page.waitForTimeout(200);
    await page.screenshot({ path: join(artifacts, 'studio-badge-webgpu.png'), clip: { x: 500, y: 0, width: 940, height: 300 } });
  });
});

// One page through the whole protocol: each step starts where the previous one left the studio.
test.describe('offsite-tuning round trip on the bundled demo model', () => {
  test.describe.configure({ mode: 'serial' });
  let s: Studio;
  let page: Page;
  let svdPackage = '';
  let gradotPackage = '';
  let adapters = '';

  test.beforeAll(async ({ browser }) => {
    s = await openStudio(browser);
    page = s.page;
  });
  test.afterEach(() => s.guard.expectClean());
  test.afterAll(async () => s?.close());

  test('model owner: bad model files are refused, naming the file', async () => {
    // A truncated safetensors with its config, picked as a model folder.
    await page.getByTestId('model-drop-input').setInputFiles([
      gpt2Folder[0]!,
      {
        name: 'model.safetensors',
        mimeType: 'application/octet-stream',
        buffer: gpt2Weights.subarray(0, Math.floor(gpt2Weights.length / 2)),
      },
    ]);
    await expectErrorToast(page, 'model.safetensors');
    await shot(page, 'studio-error-truncated-safetensors');
    await dismissToasts(page);
    // A real drag-and-drop of a file that is not a model at all.
    await page.evaluate(() => {
      const dt = new DataTransfer();
      dt.items.add(new File(['hello'], 'notes.txt', { type: 'text/plain' }));
      document
        .querySelector('[data-testid=model-drop]')!
        .dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    });
    await expectErrorToast(page, 'notes.txt');
    await dismissToasts(page);
  });

  test('model owner: a model folder opens after the errors and compresses with svd', async () => {
    // The tiny GPT-2 test fixture (2 blocks, so adapters 0:1; svd needs no tokenizer).
    await page.getByTestId('model-drop-input').setInputFiles(gpt2Folder);
    const inspect = page.locator('section[aria-label^="Inspect ·"]');
    await expect(inspect, 'the tiny gpt2 folder opens in the inspect panel').toBeVisible({ timeout: 15_000 });
    const text = await inspect.innerText();
    expect(text, 'inspect shows architecture and parameter counts').toMatch(/gpt2/);
    expect(text).toMatch(/parameters/);
    await dismissToasts(page);
    await shot(page, 'studio-model-owner-inspect');

    await page.getByText('SVD', { exact: true }).click();
    await numberField(page, 'adapters bottom').fill('0');
    await numberField(page, 'top').fill('1');
    await page.getByRole('button', { name: /Build emulator/ }).click();
    const results = page.locator('section[aria-label^="Results ·"]');
    await expect(results, 'svd compression of the fixture produces a results panel').toBeVisible({ timeout: 60_000 });
    // The readings sit in the "details" disclosure (closed, so textContent rather than innerText).
    const rtext = (await results.textContent()) ?? '';
    expect(rtext, 'results show the budget').toMatch(/middle blocks/);
    expect(rtext, 'results show the readings used').toMatch(/reading: /);
    await page
      .locator('.subhead', { hasText: 'Singular values' })
      .waitFor({ timeout: 20_000 })
      .catch(() => undefined);
    await page.waitForTimeout(500);
    await shot(page, 'studio-model-owner-results');
    const download = page.waitForEvent('download', { timeout: 20_000 });
    await results.getByRole('button', { name: /Download emulator package/ }).click();
    const d = await download;
    svdPackage = join(artifacts, d.suggestedFilename());
    await d.saveAs(svdPackage);
    expect(d.suggestedFilename()).toMatch(/\.zip$/);
    expect(statSync(svdPackage).size).toBeGreaterThan(1000);
  });

  test('model owner: GradOT compression of the demo model with a support pass', async () => {
    test.setTimeout(360_000);
    await openDemo(page);
    const text = (await page.locator('section[aria-label^="Inspect · demo"]').innerText()).replace(/\s+/g, ' ');
    expect(text, 'inspect shows the demo: 8 layers, d=256').toMatch(/layers 8 hidden 256/);
    expect(text, 'inspect shows the demo in F16').toMatch(/F16/);
    await dismissToasts(page);
    await page.getByText('GradOT', { exact: true }).click();
    await numberField(page, 'adapters bottom').fill('1');
    await numberField(page, 'top').fill('1');
    await numberField(page, 'support examples').fill('8');
    await numberField(page, 'context').fill('32');
    await page.getByTestId('support-drop-input').setInputFiles(jsonl('support.jsonl', mcValid));
    await page
      .locator('.drop-label', { hasText: 'support.jsonl' })
      .waitFor({ timeout: 10_000 })
      .catch(() => undefined);
    await page.getByRole('button', { name: /Build emulator \(gradot\)/ }).click();
    // Either the results or an error toast (fail fast instead of waiting out the timeout).
    const results = page.locator('section[aria-label^="Results · gradot"]');
    await page
      .locator('section[aria-label^="Results · gradot"], [data-testid=toast].error')
      .first()
      .waitFor({ timeout: 240_000 })
      .catch(() => undefined);
    if (!(await results.isVisible())) await shot(page, 'studio-model-owner-gradot-failed');
    await expect(results, 'gradot compression with a support pass finishes').toBeVisible();
    expect(await results.innerText(), 'results report the support pass').toMatch(/support pass\s+\d+ loss tokens/);
    await page.waitForTimeout(800);
    await shot(page, 'studio-model-owner-gradot');
    const download = page.waitForEvent('download', { timeout: 20_000 });
    await results.getByRole('button', { name: /Download emulator package/ }).click();
    const d = await download;
    gradotPackage = join(artifacts, d.suggestedFilename());
    await d.saveAs(gradotPackage);
    await dismissToasts(page);
  });

  test('data owner: bad datasets and packages are refused by name; the package and a dataset open', async () => {
    await page.getByTestId('tab-data').click();
    await expect(page.getByTestId('view-data')).toBeVisible();
    // A dataset that is not JSON Lines.
    await page.getByTestId('dataset-drop-input').setInputFiles(jsonl('bad.jsonl', Buffer.from('{"text": "ok"}\nthis is not json\n')));
    await expectErrorToast(page, 'bad.jsonl');
    await expect(page.getByTestId('dataset-issues'), 'dataset error shown inline').toBeVisible();
    await shot(page, 'studio-error-bad-dataset');
    await dismissToasts(page);
    // A zip that is not an emulator package.
    await page
      .getByTestId('package-drop-input')
      .setInputFiles({ name: 'other.zip', mimeType: 'application/zip', buffer: Buffer.from('PK\u0003\u0004 definitely not a zip') });
    await expectErrorToast(page, 'other.zip');
    await dismissToasts(page);
    // A zip that looks like a package but is not a GradOT emulator.
    const fake = zipSync({
      'emulator.json': strToU8(JSON.stringify({ format: 'some-other-tool', version: 1 })),
      'emulator.safetensors': new Uint8Array(gpt2Weights),
    });
    await page
      .getByTestId('package-drop-input')
      .setInputFiles({ name: 'foreign-package.zip', mimeType: 'application/zip', buffer: Buffer.from(fake) });
    await expectErrorToast(page, 'foreign-package.zip');
    await dismissToasts(page);
    // The package the model owner downloaded opens here.
    await page.getByTestId('package-drop-input').setInputFiles(svdPackage);
    await expect(page.locator('section[aria-label="Emulator package"] dl'), 'the downloaded emulator package opens').toBeVisible({
      timeout: 15_000,
    });
    // A valid dataset previews after the errors (the app is still usable).
    await page.getByTestId('dataset-drop-input').setInputFiles(jsonl('valid.jsonl', mcValid));
    const table = page.locator('table.preview');
    await expect(table, 'valid dataset shows a preview table').toBeVisible({ timeout: 15_000 });
    expect(await table.locator('tbody tr').count(), 'preview table has rows').toBeGreaterThan(0);
    await shot(page, 'studio-data-owner');
  });

  test('data owner: tuning pauses, resumes, and after a reload resumes from its OPFS checkpoint', async () => {
    test.setTimeout(600_000);
    // The gradot emulator carries the tokenizer.
    await page.getByTestId('package-drop-input').setInputFiles(gradotPackage);
    await page
      .locator('section[aria-label="Emulator package"] dl', { hasText: 'gradot' })
      .waitFor({ timeout: 15_000 })
      .catch(() => undefined);
    await page.getByTestId('dataset-drop-input').setInputFiles(jsonl('train.jsonl', Buffer.from(qaValidLines.slice(0, 44).join('\n'))));
    await page
      .locator('.meta', { hasText: 'train.jsonl' })
      .first()
      .waitFor({ timeout: 15_000 })
      .catch(() => undefined);
    const training = page.locator('section[aria-label="Training"]');
    const tnum = (label: string) => training.locator('label.field', { hasText: label }).locator('input').first();
    await tnum('lr').fill('0.001');
    await tnum('epochs').fill('2');
    await tnum('batch').fill('4');
    await tnum('seq len').fill('32');
    await tnum('checkpoint every').fill('2');
    await tnum('valid fraction').fill('0.1');
    await training.getByRole('button', { name: 'Start' }).click();
    // Live progress: somewhere past step 5 and before the end.
    await page.waitForFunction(
      () => {
        const m = /step (\d+)\/(\d+)/.exec(document.querySelector('section[aria-label="Training"] .progress-line')?.textContent ?? '');
        return m !== null && Number(m[1]) >= 5 && Number(m[1]) < Number(m[2]);
      },
      null,
      { timeout: 180_000, polling: 100 },
    );
    // Pause holds the step counter; Resume continues.
    const stepNow = async () => Number(/step (\d+)\//.exec(await training.locator('.progress-line').innerText())?.[1] ?? -1);
    await training.getByRole('button', { name: 'Pause' }).click();
    await page.waitForTimeout(1500);
    const held = await stepNow();
    await page.waitForTimeout(2500);
    expect(held, 'a step is shown while paused').toBeGreaterThanOrEqual(0);
    expect(await stepNow(), `pause holds training at step ${held}`).toBe(held);
    await training.getByRole('button', { name: 'Resume' }).click();
    await page.waitForFunction(
      (h) => {
        const m = /step (\d+)\//.exec(document.querySelector('section[aria-label="Training"] .progress-line')?.textContent ?? '');
        return m !== null && Number(m[1]) > h;
      },
      held,
      { timeout: 60_000, polling: 100 },
    );
    await shot(page, 'studio-data-owner-training');
    // A reload mid-training offers to resume from the last checkpoint.
    await page.reload({ waitUntil: 'load' });
    await page.getByTestId('tab-data').click();
    const banner = page.getByTestId('resume-banner');
    await expect(banner, 'reload mid-training offers resume').toBeVisible({ timeout: 15_000 });
    await shot(page, 'studio-resume-after-reload');
    await banner.getByRole('button', { name: 'Resume' }).click();
    await expect(
      page.locator('section[aria-label="Loss"] dl', { hasText: 'resumed from' }),
      'the resumed run finishes and says which step it continued from',
    ).toBeVisible({ timeout: 240_000 });
    await shot(page, 'studio-data-owner-tuned');
  });

  test('data owner: Emulator ZS and FT evaluated on the first examples; adapters download', async () => {
    test.setTimeout(240_000);
    await page.getByTestId('eval-drop-input').setInputFiles(jsonl('test.jsonl', qaTest));
    await page
      .locator('.drop-label', { hasText: 'evaluation file: test.jsonl' })
      .waitFor({ timeout: 10_000 })
      .catch(() => undefined);
    const section = page.locator('section[aria-label="Evaluate and export"]');
    await section.locator('label.field', { hasText: 'examples' }).locator('input').fill(String(EVAL_N));
    await page.getByRole('button', { name: /Evaluate emulator/ }).click();
    const metrics = section.locator('table.metrics');
    await expect(metrics).toBeVisible({ timeout: 120_000 });
    expect(await metrics.innerText(), 'Emulator ZS and Emulator FT evaluated').not.toContain('not run');
    await expectNColumn(metrics);
    // The run was resumed after a reload: it still knows it trained full adapter blocks, not LoRA.
    await expect(
      section.getByRole('button', { name: /Download PEFT/ }),
      'PEFT export is for LoRA runs only, resumed runs too',
    ).toBeDisabled();
    const download = page.waitForEvent('download', { timeout: 30_000 });
    await page.getByRole('button', { name: 'Download adapters (.safetensors)' }).click();
    const d = await download;
    adapters = join(artifacts, d.suggestedFilename());
    await d.saveAs(adapters);
    await shot(page, 'studio-data-owner-evaluated');
  });

  test('data owner: try it generates text with the emulator and tuned adapters', async () => {
    test.setTimeout(180_000);
    await tryIt(page, 'try-data');
    await shot(page, 'studio-data-owner-try-it');
  });

  test('model owner: returned adapters plug into the demo model; Full ZS and Plug-in evaluated', async () => {
    test.setTimeout(240_000);
    // The model was closed by the reload: open it again.
    await page.getByTestId('tab-model').click();
    await openDemo(page);
    await page.getByTestId('adapter-drop-input').setInputFiles(adapters);
    await page
      .locator('.drop-label', { hasText: 'adapter layout' })
      .waitFor({ timeout: 15_000 })
      .catch(() => undefined);
    await page.getByTestId('plugin-task-drop-input').setInputFiles(jsonl('test.jsonl', qaTest));
    await page
      .locator('.drop-label', { hasText: 'task: test.jsonl' })
      .waitFor({ timeout: 10_000 })
      .catch(() => undefined);
    const section = page.locator('section[aria-label="Plug in returned adapters"]');
    await section.locator('label.field', { hasText: 'examples' }).locator('input').fill(String(EVAL_N));
    await page.getByRole('button', { name: 'Plug in and evaluate' }).click();
    const metrics = section.locator('table.metrics');
    await expect(metrics, 'Full ZS and Plug-in evaluated').toBeVisible({ timeout: 120_000 });
    await expectNColumn(metrics);
    await shot(page, 'studio-model-owner-plugin');
  });

  test('model owner: try it generates text with the plug-in model', async () => {
    test.setTimeout(180_000);
    await tryIt(page, 'try-model');
    await shot(page, 'studio-model-owner-try-it');
  });

  test('model owner: adapters dropped on a different model are refused by name', async () => {
    await page.getByTestId('model-drop-input').setInputFiles(gpt2Folder);
    await page
      .locator('section[aria-label^="Inspect ·"]', { hasText: 'gpt2' })
      .waitFor({ timeout: 15_000 })
      .catch(() => undefined);
    await page.getByTestId('adapter-drop-input').setInputFiles(adapters);
    await expectErrorToast(page, 'adapter.safetensors');
    await dismissToasts(page);
    await page.getByTestId('tab-data').click();
    await page.getByTestId('tab-model').click();
    await expect(page.getByTestId('view-model'), 'tabs still switch after the errors').toBeVisible();
  });
});

test.describe('researcher', () => {
  test('the protocol grid runs two settings on the demo model, Full FT included: five numbers per run', async ({ studio: { page } }) => {
    test.setTimeout(600_000);
    await openDemo(page);
    await page.getByTestId('tab-research').click();
    const grid = page.locator('section[aria-label="Settings grid"]');
    const fullFt = grid.locator('label', { hasText: 'Full FT' }).locator('input[type=checkbox]');
    if (!(await fullFt.isChecked())) await fullFt.check();
    await grid.locator('label.chip', { hasText: 'svd' }).click();
    await numberField(page, 'keep', grid).fill('0.3');
    await numberField(page, 'L', grid).fill('1');
    await numberField(page, 'R', grid).fill('1');
    await numberField(page, 'lr', grid).fill('0.001');
    await numberField(page, 'seq len', grid).fill('32');
    await numberField(page, 'support ex.', grid).fill('8');
    await page
      .getByTestId('task-drop-input')
      .setInputFiles([
        jsonl('train.jsonl', Buffer.from(qaValidLines.slice(0, 20).join('\n'))),
        jsonl('test.jsonl', Buffer.from(qaValidLines.slice(100, 108).join('\n'))),
      ]);
    await grid
      .locator('.drop-label', { hasText: 'task: train.jsonl' })
      .waitFor({ timeout: 10_000 })
      .catch(() => undefined);
    const run = grid.getByRole('button', { name: /Run 2 settings/ });
    await expect(run, 'protocol grid of 2 settings is ready to run').toBeEnabled();
    await run.click();
    // gradot and drop at keep 0.3, each a full protocol run in the browser.
    await page.waitForFunction(
      () =>
        [...document.querySelectorAll('[data-testid=runs-table] tbody tr')].filter((r) => r.textContent?.includes('browser')).length >= 2,
      null,
      { timeout: 480_000, polling: 500 },
    );
    const rows = page.locator('[data-testid=runs-table] tbody tr', { hasText: 'browser' });
    // td.num cells: keep, λ, then Full ZS, Emulator ZS, Emulator FT, Plug-in, Full FT, Δ, ratio.
    const five = (await rows.first().locator('td.num').allInnerTexts()).slice(2, 7).map((c) => c.trim());
    expect(five, 'a run row shows the five numbers').toHaveLength(5);
    for (const c of five) expect(c).toMatch(/^-?\d+(\.\d+)?$/);
    expect(await rows.first().innerText(), 'the row names the demo model').toContain('demo');
    await dismissToasts(page);
    await shot(page, 'studio-researcher-protocol');
  });

  test('a bundled task folder loads train/test/valid from the site', async ({ studio: { page } }) => {
    await page.getByTestId('tab-research').click();
    const grid = page.locator('section[aria-label="Settings grid"]');
    await grid.getByRole('button', { name: 'imdb-sentiment-mc' }).click();
    await expect(
      grid.locator('.drop-label', {
        hasText: 'task: imdb-sentiment-mc/train.jsonl, imdb-sentiment-mc/test.jsonl, imdb-sentiment-mc/valid.jsonl',
      }),
    ).toBeVisible({ timeout: 15_000 });
  });

  test('imported runs join the table and the Pareto plot; CSV export; a broken import is refused', async ({ studio: { page } }) => {
    await page.getByTestId('tab-research').click();
    // These numbers are a test fixture (origin "import"), not results.
    const fixtureRuns = {
      format: 'gradot-studio-runs',
      version: 1,
      runs: [0.2, 0.3, 0.5].map((keep, i) => ({
        id: `fixture-${i}`,
        model: 'fixture',
        task: 'fixture',
        metric: 'acc',
        setting: { method: 'gradot', keep, lambdaAttn: 1, lambdaMlp: 1, adapters: { bottom: 2, top: 2 } },
        fullZS: 0.5,
        emulatorZS: 0.4 + 0.05 * i,
        emulatorFT: 0.55 + 0.05 * i,
        plugIn: 0.7 + 0.02 * i,
        fullFT: 0.8,
        compressionRatio: 0.4 + 0.2 * i,
      })),
    };
    const importInput = page.locator('label.button:has-text("Import JSON") input');
    await importInput.setInputFiles({ name: 'runs.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(fixtureRuns)) });
    const imported = page.locator('[data-testid=runs-table] tbody tr', { hasText: 'import' });
    await expect(imported, 'imported runs join the runs table').toHaveCount(3, { timeout: 10_000 });
    const totalRuns = await page.locator('[data-testid=runs-table] tbody tr').count();
    expect(
      await page.locator('section[aria-label^="Privacy"] [data-testid=plane-chart] svg').count(),
      'privacy-utility plane renders',
    ).toBeGreaterThan(0);
    const download = page.waitForEvent('download', { timeout: 10_000 });
    await page.getByRole('button', { name: 'Export CSV' }).click();
    const p = join(artifacts, 'runs.csv');
    await (await download).saveAs(p);
    const csv = readFileSync(p, 'utf8').trim().split('\n');
    expect(csv, 'CSV export: a header and one line per run').toHaveLength(totalRuns + 1);
    expect(csv[0]).toMatch(/^id,createdAt,model/);
    await shot(page, 'studio-researcher-runs');
    await importInput.setInputFiles({ name: 'broken-runs.json', mimeType: 'application/json', buffer: Buffer.from('{ nope') });
    await expectErrorToast(page, 'broken-runs.json');
    await dismissToasts(page);
  });
});

test('a run checkpointed in OPFS is offered after a reload, and discarding it hides the banner', async ({ studio: { page } }) => {
  // The checkpoint store's manifest under gradot-runs/<runId> (the layout the studio worker writes).
  await page.evaluate(async () => {
    const root = await navigator.storage.getDirectory();
    const dir = await (await root.getDirectoryHandle('gradot-runs', { create: true })).getDirectoryHandle('run-e2e', { create: true });
    const manifest = {
      format: 'gradot-checkpoints',
      version: 1,
      nextSeq: 2,
      latest: 'step-7',
      checkpoints: [
        {
          id: 'step-7',
          seq: 1,
          dir: 'checkpoints/1-step-7',
          files: [],
          committedAt: new Date().toISOString(),
          meta: { runId: 'run-e2e', step: 7, totalSteps: 20, packageName: 'demo-emulator.zip', datasetName: 'train.jsonl' },
        },
      ],
    };
    const w = await (await dir.getFileHandle('manifest.json', { create: true })).createWritable();
    await w.write(JSON.stringify(manifest));
    await w.close();
  });
  await page.reload({ waitUntil: 'load' });
  await page.getByTestId('tab-data').click();
  const banner = page.getByTestId('resume-banner');
  await expect(banner).toBeVisible({ timeout: 10_000 });
  await expect(banner).toContainText('step 7/20');
  await shot(page, 'studio-resume-banner');
  await page.getByRole('button', { name: 'Discard' }).click();
  await expect(banner).toBeHidden({ timeout: 5_000 });
});

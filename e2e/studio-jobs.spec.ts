/**
 * Long jobs under the user's control, and the researcher's comparison plots (see the old runner's version
 * of this file for the list). One serial test on the built site; checks are soft so every one reports.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Locator, Page } from '@playwright/test';
import { artifacts, dismissToasts, expect, repoRoot as repo, shot, test } from './fixtures';

function check(cond: unknown, what: string): void {
  console.log(`  ${cond ? 'ok  ' : 'FAIL'} ${what}`);
  expect.soft(cond, what).toBeTruthy();
}

const field = (page: Page, label: string, scope?: Locator) =>
  (scope ?? page.locator('body'))
    .locator('label.field')
    .filter({ has: page.getByText(label, { exact: true }) })
    .locator('input')
    .first();

/** Waits until the section's Cancel button is enabled (the worker named the job), then clicks it. */
async function cancelIn(page: Page, section: Locator): Promise<boolean> {
  const btn = section.getByTestId('cancel').first();
  const ok = await btn.waitFor({ timeout: 60_000 }).then(
    () => true,
    () => false,
  );
  if (!ok) return false;
  await page
    .waitForFunction((el) => !(el as HTMLButtonElement).disabled, await btn.elementHandle(), { timeout: 60_000 })
    .catch(() => undefined);
  await btn.click();
  return true;
}

async function cancelledIn(section: Locator, timeout = 120_000): Promise<boolean> {
  return section
    .getByTestId('job-status')
    .filter({ hasText: 'cancelled' })
    .first()
    .waitFor({ timeout })
    .then(
      () => true,
      () => false,
    );
}

/** Rows for the researcher plots (a fixture, not results): three methods × three keeps, λ for GradOT, two seeds. */
function fixtureRuns(): unknown[] {
  const runs: unknown[] = [];
  let id = 0;
  const add = (method: string, keep: number, lambda: number, seed: number, emuZS: number, emuFT: number, plugIn: number) =>
    runs.push({
      id: `fx-${id++}`,
      createdAt: '2026-01-01T00:00:00.000Z',
      model: 'demo',
      task: 'genre-short-mc',
      metric: 'acc',
      seed,
      setting: { method, keep, lambdaAttn: lambda, lambdaMlp: lambda, adapters: { bottom: 2, top: 2 } },
      fullZS: 0.62,
      emulatorZS: emuZS,
      emulatorFT: emuFT,
      plugIn,
      fullFT: null,
      delta: plugIn - emuFT,
      compressionRatio: 1 / keep,
      origin: 'browser',
    });
  for (const seed of [0, 1]) {
    const j = seed * 0.012;
    for (const keep of [0.2, 0.3, 0.5]) {
      add('gradot', keep, 1, seed, 0.62 - (0.6 - keep) * 0.5 + j, 0.5 + keep * 0.2, 0.8 - (0.5 - keep) * 0.1 - j);
      add('svd', keep, 0, seed, 0.62 - (0.6 - keep) * 0.35 + j, 0.48 + keep * 0.2, 0.74 - (0.5 - keep) * 0.15 + j);
      add('drop', keep, 0, seed, 0.62 - (0.6 - keep) * 0.6 - j, 0.4 + keep * 0.3, 0.7 - (0.5 - keep) * 0.3);
    }
    for (const lambda of [0, 0.5, 2]) add('gradot', 0.3, lambda, seed, 0.5 - lambda * 0.02 + j, 0.56, 0.76 + lambda * 0.01 - j);
  }
  // Two browser-made runs carry their compression record (demo model, blocks 2-5 in the middle): the
  // comparison draws their kept-rank maps and spectra. svd keeps the top components; GradOT some beyond.
  const record = (gradot: boolean) => {
    const dims: Record<string, number> = { q: 256, k: 128, v: 128, o: 256, gate: 256, up: 256, down: 256 };
    const layers = [2, 3, 4, 5].map((source, i) => {
      const ranks: Record<string, number> = {};
      const keptRanges: Record<string, [number, number][]> = {};
      for (const [p, n] of Object.entries(dims)) {
        const r = Math.round(n * (gradot ? 0.25 + 0.05 * i : 0.3));
        ranks[p] = r;
        const top = gradot ? Math.round(r * 0.8) : r;
        keptRanges[p] = [[0, top], ...Array.from({ length: r - top }, (_, k): [number, number] => [r + 5 + 2 * k, r + 6 + 2 * k])];
      }
      return { index: i + 2, source, role: 'middle', ranks, mlpWidth: 688, keptRanges };
    });
    return { compressRecord: { emulator: { layers } } };
  };
  (runs[0] as { report?: unknown }).report = record(true);
  (runs[1] as { report?: unknown }).report = record(false);
  // Equal numbers in two settings: both markers must stay visible.
  add('prune', 0.3, 0, 0, 0.5, 0.56, 0.76);
  add('prune', 0.5, 0, 0, 0.55, 0.6, 0.78);
  return runs;
}

test('every long job can be cancelled; hosted-demo GradOT; researcher plots', async ({ studio: { page } }) => {
  test.setTimeout(1_200_000);
  // ---- Model owner: hosted demo, GradOT with bundled support text, cancelled once, then built.
  const settings = page.locator('section[aria-label="Emulator settings"]');
  await page.getByTestId('open-demo').click({ timeout: 30_000 });
  check(
    await page
      .locator('section[aria-label^="Inspect · demo"]')
      .waitFor({ timeout: 120_000 })
      .then(
        () => true,
        () => false,
      ),
    'bundled demo model opens',
  );
  await page.getByTestId('support-bundled').getByRole('button', { name: 'genre-short-mc' }).click();
  check(
    await settings
      .getByText(/genre-short-mc\/train\.jsonl: \d+ rows/)
      .waitFor({ timeout: 30_000 })
      .then(
        () => true,
        () => false,
      ),
    'bundled task text is the support data (no local file)',
  );
  // The run to cancel is made long enough to be caught running (the demo model compresses in seconds).
  await field(page, 'support examples', settings).fill('400');
  await field(page, 'context', settings).fill('128');
  const build = settings.getByRole('button', { name: /Build emulator/ });
  await build.click();
  // The ETA keeps moving between progress events.
  const eta = settings.getByTestId('eta');
  await eta.waitFor({ timeout: 30_000 }).catch(() => undefined);
  const status1 = await settings
    .getByTestId('job-status')
    .innerText()
    .catch(() => '');
  await page.waitForTimeout(2_500);
  const status2 = await settings
    .getByTestId('job-status')
    .innerText()
    .catch(() => '');
  check(status1 !== status2, `compress status moves by itself ("${status1.replace(/\s+/g, ' ')}" → "${status2.replace(/\s+/g, ' ')}")`);
  check(await cancelIn(page, settings), 'compress has a Cancel button');
  check(await cancelledIn(settings), 'cancelled compress says "cancelled"');
  check(await build.isEnabled(), 'Build is enabled again after cancel');
  await shot(page, 'jobs-compress-cancelled');
  await field(page, 'support examples', settings).fill('4');
  await field(page, 'context', settings).fill('32');
  await build.click();
  const results = page.locator('section[aria-label^="Results · gradot"]');
  check(
    await results.waitFor({ timeout: 300_000 }).then(
      () => true,
      () => false,
    ),
    'GradOT emulator built from the hosted demo with no local file',
  );
  const summary = (
    await page
      .getByTestId('compress-summary')
      .innerText()
      .catch(() => '')
  ).replace(/\s+/g, ' ');
  check(
    /keeps .*% of the middle blocks/.test(summary) && /Download: /.test(summary),
    `results say what was kept and the download size ("${summary.slice(0, 120)}…")`,
  );
  const resultsText = await results.innerText();
  check(!/reading: |planHFLoad|rank pool/.test(resultsText), 'no developer jargon outside the details disclosure');
  await shot(page, 'jobs-hosted-demo-gradot');
  const dl = page.waitForEvent('download', { timeout: 30_000 });
  await results.getByRole('button', { name: /Download emulator package/ }).click();
  const pkgPath = join(artifacts, 'jobs-demo-emulator.zip');
  await (await dl).saveAs(pkgPath);

  // ---- Generation: cancel while it runs.
  const tryIt = page.getByTestId('try-model');
  await tryIt.getByRole('button', { name: 'Generate' }).click();
  check(await cancelIn(page, tryIt), 'Try it has a Cancel button');
  const genCancelled = await cancelledIn(tryIt, 240_000);
  check(genCancelled, 'cancelled generation says "cancelled"');
  if (!genCancelled) console.log(`  note Try it box: ${(await tryIt.innerText().catch(() => '')).replace(/\s+/g, ' ').slice(0, 300)}`);

  // ---- Data owner: tune and evaluate, each cancelled.
  await page.getByTestId('tab-data').click();
  await page.getByTestId('package-drop-input').setInputFiles(pkgPath);
  await page.getByTestId('dataset-drop-input').setInputFiles(join(repo, 'public/data/genre-short-mc/train.jsonl'));
  const training = page.locator('section[aria-label="Training"]');
  await field(page, 'seq len', training).fill('32');
  const start = training.getByRole('button', { name: 'Start' });
  await page
    .waitForFunction((el) => !(el as HTMLButtonElement).disabled, await start.elementHandle(), { timeout: 60_000 })
    .catch(() => undefined);
  await start.click();
  await training
    .getByText(/step \d+\/\d+/)
    .first()
    .waitFor({ timeout: 180_000 })
    .catch(() => undefined);
  await training.getByRole('button', { name: 'Pause' }).click();
  check(
    await training
      .getByText(/pausing after this step|paused/)
      .first()
      .waitFor({ timeout: 1_000 })
      .then(
        () => true,
        () => false,
      ),
    'Pause answers at once',
  );
  await training.getByRole('button', { name: 'Resume' }).click();
  check(await cancelIn(page, training), 'tuning has a Cancel button');
  check(await cancelledIn(training), 'cancelled tuning says "cancelled"');
  check(await start.isEnabled(), 'Start is enabled again after cancel');
  const banner = await page
    .getByTestId('resume-banner')
    .innerText({ timeout: 3_000 })
    .catch(() => '');
  check(!/interrupted/.test(banner), `the banner does not call a cancel an interruption ("${banner.replace(/\s+/g, ' ').slice(0, 90)}")`);
  const evalPanel = page.locator('section[aria-label="Evaluate and export"]');
  check(
    await page.locator('section[aria-label="Loss"]').getByText('these adapters are usable').isVisible(),
    'the cancelled run offers the adapters it trained',
  );
  check(await evalPanel.getByRole('button', { name: 'Download adapters (.safetensors)' }).isEnabled(), 'those adapters can be downloaded');
  check(!(await evalPanel.getByRole('button', { name: /Download PEFT/ }).isEnabled()), 'PEFT download is disabled after a full-block run');
  await page.getByTestId('eval-drop-input').setInputFiles(join(repo, 'public/data/genre-short-mc/test.jsonl'));
  check((await field(page, 'examples (0 = all)', evalPanel).inputValue()) === '200', 'evaluation defaults to 200 examples');
  const evalEstimate = (
    await evalPanel
      .getByTestId('eval-estimate')
      .innerText({ timeout: 5_000 })
      .catch(() => '')
  ).replace(/\s+/g, ' ');
  check(/\d+ of \d+ examples/.test(evalEstimate), `evaluation size is shown before starting ("${evalEstimate}")`);
  check(/about \d/.test(evalEstimate), 'and its time, estimated from the tuning run before the first evaluation');
  await evalPanel.getByRole('button', { name: /Evaluate emulator/ }).click();
  check(await cancelIn(page, evalPanel), 'evaluation has a Cancel button');
  check(await cancelledIn(evalPanel), 'cancelled evaluation says "cancelled"');
  await shot(page, 'jobs-data-owner-cancelled');

  // ---- Researcher: a small grid, one setting finished, then cancelled; the finished row stays.
  await page.getByTestId('tab-research').click();
  const grid = page.locator('section[aria-label="Settings grid"]');
  await grid.getByRole('button', { name: 'genre-short-mc' }).click();
  // The chips' checkboxes are visually hidden: click the chip.
  for (const m of ['svd', 'drop']) await grid.locator('label.chip.on', { hasText: m }).click();
  await field(page, 'keep', grid).fill('0.3, 0.5');
  await field(page, 'train ex.', grid).fill('8');
  await field(page, 'test ex.', grid).fill('10');
  await field(page, 'seq len', grid).fill('32');
  await field(page, 'support ex.', grid).fill('4');
  const gridEstimate = grid.getByTestId('grid-estimate');
  await gridEstimate
    .filter({ hasText: /estimated \d/ })
    .waitFor({ timeout: 60_000 })
    .catch(() => undefined);
  const estimateBefore = (await gridEstimate.innerText().catch(() => '')).replace(/\s+/g, ' ');
  const estimateHow = (await gridEstimate.getAttribute('title').catch(() => '')) ?? '';
  const gridStart = Date.now();
  await grid.getByRole('button', { name: /Run 2 settings/ }).click();
  check(
    await grid
      .getByTestId('overall-progress')
      .waitFor({ timeout: 30_000 })
      .then(
        () => true,
        () => false,
      ),
    'grid shows an overall progress',
  );
  const rows = page.getByTestId('runs-table').locator('tbody tr');
  const oneDone = await rows
    .first()
    .waitFor({ timeout: 400_000 })
    .then(
      () => true,
      () => false,
    );
  check(oneDone, 'first grid setting finishes');
  // For the record (not a check: the machine is shared): the estimate against the first setting's time.
  console.log(
    `  note estimate before the grid: "${estimateBefore}"; the first of 2 settings took ${((Date.now() - gridStart) / 1000).toFixed(0)} s (${estimateHow})`,
  );
  check(await cancelIn(page, grid), 'grid has a Cancel button');
  check(await cancelledIn(grid, 300_000), 'cancelled grid says "cancelled"');
  check((await rows.count()) === 1, 'the finished setting stays in the table after the cancel');
  await shot(page, 'jobs-grid-cancelled');

  // ---- Researcher plots from imported rows.
  const fx = join(artifacts, 'jobs-fixture-runs.json');
  writeFileSync(fx, JSON.stringify({ format: 'gradot-studio-runs', version: 1, runs: fixtureRuns() }));
  page.once('dialog', (d) => void d.accept());
  await page.getByRole('button', { name: 'Clear' }).click();
  await page.locator('label.button', { hasText: 'Import JSON' }).locator('input').setInputFiles(fx);
  for (const id of ['plane-chart', 'keep-sweep', 'lambda-sweep']) {
    check(
      await page
        .getByTestId(id)
        .waitFor({ timeout: 20_000 })
        .then(
          () => true,
          () => false,
        ),
      `${id} renders`,
    );
  }
  const legend = await page.getByTestId('plane-chart').locator('.legend-item').allInnerTexts();
  check(legend.join(',') === 'gradot,svd,prune,drop', `plane legend lists the plotted methods (${legend.join(', ')})`);
  const markers = await page.getByTestId('plane-chart').locator('g.pt').count();
  // 3 methods × 3 keeps + 3 extra GradOT λ settings + 2 prune settings (seeds averaged).
  check(markers === 14, `one marker per setting, seeds averaged (${markers})`);
  const frontiers = await page.getByTestId('plane-chart').locator('polyline').count();
  check(frontiers === 4, `one frontier line per method (${frontiers})`);
  await page.waitForTimeout(300);
  // The import's toast would cover a sweep in the screenshot.
  await dismissToasts(page);
  await shot(page, 'jobs-researcher-plots');
  const plane = page.getByTestId('plane-chart');
  await plane.screenshot({ path: join(artifacts, 'jobs-privacy-utility-plane.png') });
});

test("researcher: time estimate before the first grid, two runs' spectra side by side; Try it cancels while exporting", async ({
  studio: { page },
}) => {
  test.setTimeout(600_000);
  await page.getByTestId('open-demo').click({ timeout: 30_000 });
  check(
    await page
      .locator('section[aria-label^="Inspect · demo"]')
      .waitFor({ timeout: 120_000 })
      .then(
        () => true,
        () => false,
      ),
    'bundled demo model opens',
  );

  // ---- Try it: Cancel in the preparation stage (model load / ONNX export), before any token. Clicked at
  // once: the worker sees it at its next stage boundary, before transformers.js is loaded.
  const tryIt = page.getByTestId('try-model');
  await tryIt.scrollIntoViewIfNeeded();
  await field(page, 'max new tokens', tryIt).fill('6');
  await tryIt.getByRole('button', { name: 'Generate' }).click();
  await tryIt.getByTestId('cancel').click();
  const status = tryIt.getByTestId('job-status');
  check(
    await status.waitFor({ timeout: 60_000 }).then(
      () => true,
      () => false,
    ),
    'the early cancel is answered',
  );
  const said = (await status.innerText().catch(() => '')).trim();
  check(/^cancelled while (preparing|loading model|exporting to ONNX)$/.test(said), `cancelled in the preparation stage ("${said}")`);
  check(!(await page.getByTestId('try-model-meta').isVisible()), 'no result after an early cancel');
  check((await page.getByTestId('try-model-output').innerText()).trim() === '', 'no text after an early cancel');
  await shot(page, 'jobs-try-it-cancelled-early');
  // Generate again: it says what it is preparing, the half-done export was not kept, and the box still works.
  await tryIt.getByRole('button', { name: 'Generate' }).click();
  const stage = page.getByTestId('try-model-stage');
  check(
    await stage
      .filter({ hasText: /preparing|loading model|exporting to ONNX|loading transformers\.js/ })
      .waitFor({ timeout: 10_000 })
      .then(
        () => true,
        () => false,
      ),
    'Try it says what it is preparing',
  );
  const meta = page.getByTestId('try-model-meta');
  check(
    await meta.waitFor({ timeout: 240_000 }).then(
      () => true,
      () => false,
    ),
    'Generate works after the early cancel',
  );
  check(/export \d/.test(await meta.innerText().catch(() => '')), 'the second Generate exported again (nothing half-done was kept)');

  // ---- Researcher: an estimate before any grid has run.
  await page.getByTestId('tab-research').click();
  const grid = page.locator('section[aria-label="Settings grid"]');
  const estimate = grid.getByTestId('grid-estimate');
  check(
    /choose a task for a time estimate/.test(await estimate.innerText().catch(() => '')),
    'without a task the grid asks for one before estimating',
  );
  await grid.getByRole('button', { name: 'genre-short-mc' }).click();
  const est = await estimate
    .filter({ hasText: /estimated \d/ })
    .waitFor({ timeout: 120_000 })
    .then(
      () => true,
      () => false,
    );
  const estText = (await estimate.innerText().catch(() => '')).replace(/\s+/g, ' ');
  check(est, `the grid shows an estimated time before its first run ("${estText}")`);
  check(/an estimate/.test(estText), 'it says it is an estimate');
  const how = (await estimate.getAttribute('title')) ?? '';
  check(
    /measured on this backend/.test(how) && /training examples of about \d+ tokens/.test(how),
    `the estimate says how it was made ("${how.slice(0, 160)}…")`,
  );
  // More test examples: a longer estimate.
  const secs = (t: string) => {
    const m = /estimated (?:(\d+)h ?)?(?:(\d+)m ?)?(?:(\d+)s)?/.exec(t);
    return m ? Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0) : NaN;
  };
  await field(page, 'test ex.', grid).fill('400');
  await page.waitForTimeout(500);
  const estMore = (await estimate.innerText().catch(() => '')).replace(/\s+/g, ' ');
  check(secs(estMore) > secs(estText), `more test examples, a longer estimate (${secs(estText)} s → ${secs(estMore)} s)`);
  await field(page, 'test ex.', grid).fill('100');

  // ---- Two runs side by side: kept-rank maps and spectra.
  const fx = join(artifacts, 'jobs-fixture-runs-compare.json');
  writeFileSync(fx, JSON.stringify({ format: 'gradot-studio-runs', version: 1, runs: fixtureRuns() }));
  await page.locator('label.button', { hasText: 'Import JSON' }).locator('input').setInputFiles(fx);
  const compare = page.getByTestId('compare-runs');
  check(
    await compare.waitFor({ timeout: 20_000 }).then(
      () => true,
      () => false,
    ),
    'the comparison shows two runs',
  );
  check((await compare.locator('canvas.heatmap').count()) === 2, 'two kept-rank heatmaps');
  const spectra = page.getByTestId('compare-spectrum');
  const drawn = await page
    .waitForFunction(() => document.querySelectorAll('[data-testid=compare-spectrum] .uplot canvas').length === 2, null, {
      timeout: 120_000,
    })
    .then(
      () => true,
      () => false,
    );
  check(drawn, 'two spectra drawn side by side');
  const notes = (await spectra.allInnerTexts()).map((t) => t.replace(/\s+/g, ' '));
  check(
    /keeps 64\/256, 13 of them outside the top 64/.test(notes[0] ?? '') && /keeps 77\/256, the top ones/.test(notes[1] ?? ''),
    `each spectrum says what its run kept (${notes.join(' | ')})`,
  );
  await page.getByTestId('compare-matrix').selectOption('3.k');
  const notes2 = await page
    .waitForFunction(() => document.querySelector('[data-testid=compare-spectrum]')?.textContent?.includes('block 3 k keeps'), null, {
      timeout: 60_000,
    })
    .then(
      () => true,
      () => false,
    );
  check(notes2, 'another matrix chosen: both spectra follow');
  await page.waitForTimeout(300);
  await dismissToasts(page);
  await shot(page, 'jobs-researcher-compare');
  await compare.screenshot({ path: join(artifacts, 'jobs-compare-runs.png') });
});

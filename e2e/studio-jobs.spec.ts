/**
 * Long jobs under the user's control, and the researcher's comparison plots (see the old runner's version
 * of this file for the list). One serial test on the built site; checks are soft so every one reports.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Locator, Page } from '@playwright/test';
import { artifacts, expect, repoRoot as repo, shot, test } from './fixtures';

function check(cond: unknown, what: string): void {
  console.log(`  ${cond ? 'ok  ' : 'FAIL'} ${what}`);
  expect.soft(cond, what).toBeTruthy();
}

const field = (page: Page, label: string, scope?: Locator) =>
  (scope ?? page.locator('body')).locator('label.field').filter({ has: page.getByText(label, { exact: true }) }).locator('input').first();

/** Waits until the section's Cancel button is enabled (the worker named the job), then clicks it. */
async function cancelIn(page: Page, section: Locator): Promise<boolean> {
  const btn = section.getByTestId('cancel').first();
  const ok = await btn.waitFor({ timeout: 60_000 }).then(() => true, () => false);
  if (!ok) return false;
  await page.waitForFunction((el) => !(el as HTMLButtonElement).disabled, await btn.elementHandle(), { timeout: 60_000 }).catch(() => undefined);
  await btn.click();
  return true;
}

async function cancelledIn(section: Locator, timeout = 120_000): Promise<boolean> {
  return section.getByTestId('job-status').filter({ hasText: 'cancelled' }).first().waitFor({ timeout }).then(() => true, () => false);
}

/** Rows for the researcher plots (a fixture, not results): three methods × three keeps, λ for GradOT, two seeds. */
function fixtureRuns(): unknown[] {
  const runs: unknown[] = [];
  let id = 0;
  const add = (method: string, keep: number, lambda: number, seed: number, emuZS: number, emuFT: number, plugIn: number) =>
    runs.push({
      id: `fx-${id++}`, createdAt: '2026-01-01T00:00:00.000Z', model: 'demo', task: 'genre-short-mc', metric: 'acc', seed,
      setting: { method, keep, lambdaAttn: lambda, lambdaMlp: lambda, adapters: { bottom: 2, top: 2 } },
      fullZS: 0.62, emulatorZS: emuZS, emulatorFT: emuFT, plugIn, fullFT: null, delta: plugIn - emuFT, compressionRatio: 1 / keep, origin: 'browser',
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
  check(await page.locator('section[aria-label^="Inspect · demo"]').waitFor({ timeout: 120_000 }).then(() => true, () => false), 'bundled demo model opens');
  await page.getByTestId('support-bundled').getByRole('button', { name: 'genre-short-mc' }).click();
  check(await settings.getByText(/genre-short-mc\/train\.jsonl: \d+ rows/).waitFor({ timeout: 30_000 }).then(() => true, () => false),
    'bundled task text is the support data (no local file)');
  await field(page, 'support examples', settings).fill('4');
  await field(page, 'context', settings).fill('32');
  const build = settings.getByRole('button', { name: /Build emulator/ });
  await build.click();
  // The ETA keeps moving between progress events.
  const eta = settings.getByTestId('eta');
  await eta.waitFor({ timeout: 30_000 }).catch(() => undefined);
  const status1 = await settings.getByTestId('job-status').innerText().catch(() => '');
  await page.waitForTimeout(2_500);
  const status2 = await settings.getByTestId('job-status').innerText().catch(() => '');
  check(status1 !== status2, `compress status moves by itself ("${status1.replace(/\s+/g, ' ')}" → "${status2.replace(/\s+/g, ' ')}")`);
  check(await cancelIn(page, settings), 'compress has a Cancel button');
  check(await cancelledIn(settings), 'cancelled compress says "cancelled"');
  check(await build.isEnabled(), 'Build is enabled again after cancel');
  await shot(page, 'jobs-compress-cancelled');
  await build.click();
  const results = page.locator('section[aria-label^="Results · gradot"]');
  check(await results.waitFor({ timeout: 300_000 }).then(() => true, () => false), 'GradOT emulator built from the hosted demo with no local file');
  const summary = (await page.getByTestId('compress-summary').innerText().catch(() => '')).replace(/\s+/g, ' ');
  check(/keeps .*% of the middle blocks/.test(summary) && /Download: /.test(summary), `results say what was kept and the download size ("${summary.slice(0, 120)}…")`);
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
  check(await cancelledIn(tryIt, 240_000), 'cancelled generation says "cancelled"');

  // ---- Data owner: tune and evaluate, each cancelled.
  await page.getByTestId('tab-data').click();
  await page.getByTestId('package-drop-input').setInputFiles(pkgPath);
  await page.getByTestId('dataset-drop-input').setInputFiles(join(repo, 'public/data/genre-short-mc/train.jsonl'));
  const training = page.locator('section[aria-label="Training"]');
  await field(page, 'seq len', training).fill('32');
  const start = training.getByRole('button', { name: 'Start' });
  await page.waitForFunction((el) => !(el as HTMLButtonElement).disabled, await start.elementHandle(), { timeout: 60_000 }).catch(() => undefined);
  await start.click();
  await training.getByText(/step \d+\/\d+/).first().waitFor({ timeout: 180_000 }).catch(() => undefined);
  await training.getByRole('button', { name: 'Pause' }).click();
  check(await training.getByText(/pausing after this step|paused/).first().waitFor({ timeout: 1_000 }).then(() => true, () => false), 'Pause answers at once');
  await training.getByRole('button', { name: 'Resume' }).click();
  check(await cancelIn(page, training), 'tuning has a Cancel button');
  check(await cancelledIn(training), 'cancelled tuning says "cancelled"');
  check(await start.isEnabled(), 'Start is enabled again after cancel');
  const banner = await page.getByTestId('resume-banner').innerText({ timeout: 3_000 }).catch(() => '');
  check(!/interrupted/.test(banner), `the banner does not call a cancel an interruption ("${banner.replace(/\s+/g, ' ').slice(0, 90)}")`);
  const evalPanel = page.locator('section[aria-label="Evaluate and export"]');
  check(await page.locator('section[aria-label="Loss"]').getByText('these adapters are usable').isVisible(), 'the cancelled run offers the adapters it trained');
  check(await evalPanel.getByRole('button', { name: 'Download adapters (.safetensors)' }).isEnabled(), 'those adapters can be downloaded');
  check(!(await evalPanel.getByRole('button', { name: /Download PEFT/ }).isEnabled()), 'PEFT download is disabled after a full-block run');
  await page.getByTestId('eval-drop-input').setInputFiles(join(repo, 'public/data/genre-short-mc/test.jsonl'));
  check((await field(page, 'examples (0 = all)', evalPanel).inputValue()) === '200', 'evaluation defaults to 200 examples');
  check(await evalPanel.getByTestId('eval-estimate').isVisible(), 'evaluation size is shown before starting');
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
  await grid.getByRole('button', { name: /Run 2 settings/ }).click();
  check(await grid.getByTestId('overall-progress').waitFor({ timeout: 30_000 }).then(() => true, () => false), 'grid shows an overall progress');
  const rows = page.getByTestId('runs-table').locator('tbody tr');
  const oneDone = await rows.first().waitFor({ timeout: 400_000 }).then(() => true, () => false);
  check(oneDone, 'first grid setting finishes');
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
    check(await page.getByTestId(id).waitFor({ timeout: 20_000 }).then(() => true, () => false), `${id} renders`);
  }
  const legend = await page.getByTestId('plane-chart').locator('.legend-item').allInnerTexts();
  check(legend.join(',') === 'gradot,svd,prune,drop', `plane legend lists the plotted methods (${legend.join(', ')})`);
  const markers = await page.getByTestId('plane-chart').locator('g.pt').count();
  // 3 methods × 3 keeps + 3 extra GradOT λ settings + 2 prune settings (seeds averaged).
  check(markers === 14, `one marker per setting, seeds averaged (${markers})`);
  const frontiers = await page.getByTestId('plane-chart').locator('polyline').count();
  check(frontiers === 4, `one frontier line per method (${frontiers})`);
  await page.waitForTimeout(300);
  await shot(page, 'jobs-researcher-plots');
  const plane = page.getByTestId('plane-chart');
  await plane.screenshot({ path: join(artifacts, 'jobs-privacy-utility-plane.png') });
});

// Shared fixtures and helpers of the browser tests. A spec imports `test` and `expect` from here (not from
// @playwright/test) to get:
// - `studio`: a fresh browser context on the built site (under its sub-path), with a guard that fails the
//   test on any request leaving the site's origin or any uncaught page error;
// - `openStudio(browser)`: the same, for a `test.describe.serial` group that shares one page across steps;
// - helpers for the studio's screens (screenshots, error toasts, labelled number fields, the demo model).
// The browser is the runner's one Chromium (playwright.config.ts: Debian's, see chromium.ts).
import { type Browser, type BrowserContext, type Locator, type Page, test as base, expect } from '@playwright/test';
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { siteOrigin, siteUrl } from './servers';

export { expect };
export { pagesUrl, siteOrigin, siteUrl, SITE_BASE } from './servers';
export { chromiumLaunchOptions } from './chromium';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** Screenshots, downloads and result files the tests keep (gitignored). */
export const artifacts = join(repoRoot, 'e2e', 'artifacts');
mkdirSync(artifacts, { recursive: true });

/** Whether a request stays on the origin (data: and blob: URLs are local by construction). */
function local(url: string, origin: string): boolean {
  return url.startsWith('data:') || url.startsWith('blob:') || url.startsWith(`${origin}/`);
}

/** What must never happen on the studio's pages: requests that leave the origin and uncaught errors.
 *  Console errors are collected for the report only (a failing job may log one on purpose). */
export class PageGuard {
  readonly offOrigin: string[] = [];
  readonly pageErrors: string[] = [];
  readonly consoleErrors: string[] = [];

  constructor(readonly origin: string) {}

  watchContext(context: BrowserContext): void {
    context.on('request', (r) => {
      if (!local(r.url(), this.origin)) this.offOrigin.push(r.url());
    });
    context.on('page', (p) => this.watchPage(p));
    for (const p of context.pages()) this.watchPage(p);
  }

  watchPage(page: Page): void {
    page.on('pageerror', (e) => this.pageErrors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') this.consoleErrors.push(m.text());
    });
    page.on('worker', (w) => w.on('console', (m) => m.type() === 'error' && this.consoleErrors.push(`[worker] ${m.text()}`)));
  }

  expectClean(): void {
    if (this.consoleErrors.length) console.log(`  note console errors: ${this.consoleErrors.slice(0, 5).join(' | ')}`);
    expect(this.pageErrors, 'no uncaught page errors').toEqual([]);
    expect(this.offOrigin, 'no request left the origin').toEqual([]);
  }
}

export interface Studio {
  page: Page;
  context: BrowserContext;
  guard: PageGuard;
  close(): Promise<void>;
}

/** A fresh context (own OPFS and storage) with the studio loaded from the built site. */
export async function openStudio(browser: Browser): Promise<Studio> {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, acceptDownloads: true });
  const guard = new PageGuard(siteOrigin());
  guard.watchContext(context);
  const page = await context.newPage();
  await page.goto(siteUrl(), { waitUntil: 'load' });
  await page.getByText('GradOT Studio', { exact: true }).waitFor({ timeout: 15_000 });
  return { page, context, guard, close: () => context.close() };
}

export const test = base.extend<{ studio: Studio }>({
  studio: async ({ browser }, use) => {
    const s = await openStudio(browser);
    await use(s);
    s.guard.expectClean();
    await s.close();
  },
});

/** A full-page screenshot kept under e2e/artifacts/. */
export async function shot(page: Page, name: string): Promise<void> {
  // The header is sticky: scrolled, a full-page capture would paint it mid-page.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
}

/** Expects an error toast that names `file` (the studio says which file is wrong). */
export async function expectErrorToast(page: Page, file: string): Promise<void> {
  const toast = page.locator('[data-testid=toast].error', { hasText: file }).first();
  await expect(toast, `an error toast names ${file}`).toBeVisible({ timeout: 15_000 });
}

export async function dismissToasts(page: Page): Promise<void> {
  // Always the first: closing one re-renders the list, so nth locators taken before would miss.
  const close = page.locator('[data-testid=toast] button.close');
  for (let i = 0; i < 10 && (await close.count()) > 0; i++)
    await close
      .first()
      .click({ timeout: 2_000 })
      .catch(() => undefined);
}

/** The input of a labelled field (`label.field` whose label text is exactly `label`) inside `scope`. */
export function numberField(page: Page, label: string, scope: Page | Locator = page): Locator {
  return scope
    .locator('label.field')
    .filter({ has: page.getByText(label, { exact: true }) })
    .locator('input')
    .first();
}

/** Model owner: "Open bundled demo" (public/models/demo, fetched from the site) and wait for its inspect panel. */
export async function openDemo(page: Page): Promise<void> {
  await page.getByTestId('open-demo').waitFor({ timeout: 10_000 });
  await expect(page.getByTestId('open-demo')).toBeEnabled({ timeout: 15_000 });
  await page.getByTestId('open-demo').click();
  await expect(page.locator('section[aria-label^="Inspect · demo"]').filter({ hasText: 'llama' })).toBeVisible({ timeout: 60_000 });
}

/** Waits for the backend badge to leave "detecting" and returns its text. */
export async function badgeText(page: Page, timeout = 60_000): Promise<string> {
  await page
    .waitForFunction(() => !document.querySelector('[data-testid=backend-badge]')?.textContent?.includes('detecting'), null, { timeout })
    .catch(() => undefined);
  return (await page.getByTestId('backend-badge').innerText()).replace(/\s+/g, ' ');
}

// Where the two servers that playwright.config.ts starts listen (ports handed over in the environment).
export const SITE_BASE = '/gradot/';

function port(name: 'E2E_SITE_PORT' | 'E2E_PAGES_PORT'): string {
  const p = process.env[name];
  if (!p) throw new Error(`${name} is not set: run the browser tests through \`npx playwright test\` (playwright.config.ts)`);
  return p;
}

/** The built site: `siteOrigin()` and `siteUrl('')` (the studio's start page under SITE_BASE). */
export const siteOrigin = (): string => `http://127.0.0.1:${port('E2E_SITE_PORT')}`;
export const siteUrl = (path = ''): string => `${siteOrigin()}${SITE_BASE}${path.replace(/^\//, '')}`;

/** The test-page dev server: `pagesUrl('e2e/pages/kernels.html')`. */
export const pagesUrl = (path: string): string => `http://127.0.0.1:${port('E2E_PAGES_PORT')}/${path.replace(/^\//, '')}`;

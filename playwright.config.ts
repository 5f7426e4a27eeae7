// Browser tests (e2e/*.spec.ts) in Debian's Chromium; see e2e/README.md.
// Two servers start before the tests and stop after them:
// - the built site (`vite build`, then `vite preview`) under the sub-path /gradot/, as a static host would
//   serve it: the studio tests run against what ships;
// - Vite's dev server for the test pages in e2e/pages/ (kernel suite, ONNX runtime checks), which import
//   src/ TypeScript directly.
// Ports are free ones chosen here (or E2E_SITE_PORT / E2E_PAGES_PORT); they travel to the test workers in
// the environment, so several checkouts can run their tests at the same time.
import { createServer } from 'node:net';
import { defineConfig } from '@playwright/test';
import { chromiumLaunchOptions } from './e2e/chromium';
import { SITE_BASE } from './e2e/servers';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

process.env.E2E_SITE_PORT ||= String(await freePort());
process.env.E2E_PAGES_PORT ||= String(await freePort());
const sitePort = process.env.E2E_SITE_PORT;
const pagesPort = process.env.E2E_PAGES_PORT;
const vite = 'node node_modules/vite/bin/vite.js';
const siteDir = 'e2e/.site';

export default defineConfig({
  testDir: 'e2e',
  testMatch: '*.spec.ts',
  // Tests spread over the workers (half the cores); a group whose steps share a page says `mode: 'serial'`.
  fullyParallel: true,
  outputDir: 'test-results',
  timeout: 120_000,
  expect: { timeout: 15_000 },
  // Each test states its own waits; a retry would hide a flaky job.
  retries: 0,
  forbidOnly: true,
  reporter: [['list']],
  use: {
    browserName: 'chromium',
    launchOptions: chromiumLaunchOptions(),
    viewport: { width: 1440, height: 900 },
    acceptDownloads: true,
    // No probe waits forever: a locator read on an element that never appears fails after 30 s, naming it.
    actionTimeout: 30_000,
    // A failing test leaves a screenshot of its pages in test-results/.
    screenshot: 'only-on-failure',
  },
  webServer: [
    {
      // Built with the shipped config (relative base), served under a sub-path: the site must work from any.
      command:
        `${vite} build --outDir ${siteDir} --emptyOutDir --sourcemap false --logLevel warn && ` +
        `${vite} preview --outDir ${siteDir} --base ${SITE_BASE} --host 127.0.0.1 --port ${sitePort} --strictPort`,
      url: `http://127.0.0.1:${sitePort}${SITE_BASE}`,
      timeout: 300_000,
      reuseExistingServer: false,
      stdout: 'ignore',
      stderr: 'pipe',
    },
    {
      command: `${vite} --config e2e/pages/vite.config.ts --port ${pagesPort} --strictPort`,
      url: `http://127.0.0.1:${pagesPort}/e2e/pages/kernels.html`,
      timeout: 120_000,
      reuseExistingServer: false,
      stdout: 'ignore',
      stderr: 'pipe',
    },
  ],
});

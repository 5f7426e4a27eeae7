/**
 * Privacy of the studio worker, against the production build on a plain static host.
 *
 * Standalone (`npx tsx e2e/privacy.spec.ts`), exits non-zero on failure:
 * - builds the site and serves it under /privacy/ with a static server that sends NO headers (what a plain
 *   static host does), plus a second server on another port (another origin) that answers anything with
 *   permissive CORS and counts the requests it gets;
 * - with service workers allowed: the page registers public/sw.js, reloads once, and ends up controlled and
 *   cross-origin isolated; then code run INSIDE the studio worker (the one that parses every user file and
 *   runs the models) tries `fetch()` to the other origin and is blocked by the Content-Security-Policy the
 *   service worker added to the worker script's response; the other origin sees no request;
 * - control, the same with service workers blocked: the page starts anyway (no reload loop), and the same
 *   fetch from the worker REACHES the other origin — the page's <meta> policy does not bind its workers,
 *   which is why the header is needed (and shows this test can fail);
 * - the Vite preview server sends the same headers for the page and the worker script.
 */
import { createServer, type Server } from 'node:http';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page, type Worker } from 'playwright-core';
import { build, preview } from 'vite';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BASE = '/privacy/';

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.jsonl': 'application/x-ndjson',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.txt': 'text/plain; charset=utf-8',
};

function listen(server: Server): Promise<string> {
  return new Promise((ok) => {
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      if (!addr || typeof addr === 'string') throw new Error('no address');
      ok(`http://127.0.0.1:${addr.port}`);
    });
  });
}

/** A static host: files only, no security headers at all. */
function serveStatic(root: string): Server {
  return createServer((req, res) => {
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
}

const failures: string[] = [];
function check(cond: unknown, what: string): void {
  if (cond) console.log(`  ok   ${what}`);
  else {
    console.log(`  FAIL ${what}`);
    failures.push(what);
  }
}

async function launch(serviceWorkers: 'allow' | 'block'): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const userDataDir = mkdtempSync(join(tmpdir(), 'gradot-privacy-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true,
    serviceWorkers,
    args: [
      '--headless=new',
      '--no-sandbox',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  return {
    context,
    async close() {
      await context.close().catch(() => undefined);
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

async function studioWorker(page: Page): Promise<Worker | null> {
  const t0 = Date.now();
  while (Date.now() - t0 < 30_000) {
    const w = page.workers().find((x) => x.url().includes('studio.worker'));
    if (w) return w;
    await page.waitForTimeout(200);
  }
  return null;
}

/** Runs a cross-origin fetch inside the studio worker: 'reached' or 'blocked: <reason>'. */
async function fetchFromWorker(w: Worker, url: string): Promise<string> {
  return w.evaluate(async (u) => {
    // The CSP reports its own refusals: proof that the policy (not CORS or COEP) stopped the request.
    let violated = '';
    self.addEventListener('securitypolicyviolation', (e) => {
      violated = `${(e as SecurityPolicyViolationEvent).effectiveDirective} ${(e as SecurityPolicyViolationEvent).blockedURI}`;
    });
    try {
      const r = await fetch(u, { cache: 'no-store' });
      return `reached (${r.status})`;
    } catch (e) {
      await new Promise((ok) => setTimeout(ok, 100));
      return `blocked: ${(e as Error).message}; CSP violation: ${violated || 'none reported'}`;
    }
  }, url);
}

async function openStudio(context: BrowserContext, url: string): Promise<{ page: Page; navigations: number }> {
  const page = context.pages()[0] ?? (await context.newPage());
  let navigations = 0;
  page.on('framenavigated', (f) => {
    if (f === page.mainFrame()) navigations++;
  });
  await page.goto(url, { waitUntil: 'load' });
  await page.getByText('GradOT Studio', { exact: true }).waitFor({ timeout: 30_000 });
  await page.waitForTimeout(500);
  return { page, navigations };
}

/** Every check; returns the failures (empty when all pass). */
async function runChecks(): Promise<string[]> {
  const out = mkdtempSync(join(tmpdir(), 'gradot-privacy-dist-'));
  console.log('[privacy] building into', out);
  await build({
    root: repo,
    configFile: join(repo, 'vite.config.ts'),
    logLevel: 'warn',
    build: { outDir: out, emptyOutDir: true, sourcemap: false },
  });
  check(existsSync(join(out, 'sw.js')), 'the build ships sw.js at the site root');
  const site = serveStatic(out);
  const origin = await listen(site);
  let hits = 0;
  const other = createServer((_req, res) => {
    hits++;
    res.writeHead(200, { 'access-control-allow-origin': '*', 'content-type': 'text/plain' }).end('exfiltrated');
  });
  const otherOrigin = await listen(other);
  const probe = `${otherOrigin}/collect?data=user-file-bytes`;
  try {
    // ---- service workers allowed: the static host gets its headers from sw.js
    {
      const b = await launch('allow');
      try {
        const { page, navigations } = await openStudio(b.context, `${origin}${BASE}`);
        const state = await page.evaluate(() => ({
          isolated: globalThis.crossOriginIsolated,
          controlled: !!navigator.serviceWorker.controller,
        }));
        check(state.controlled, 'the page is controlled by the security-headers service worker');
        check(state.isolated, 'the page is cross-origin isolated (COOP/COEP from the service worker)');
        check(navigations <= 2, `at most one reload to take control (${navigations} navigation(s))`);
        const w = await studioWorker(page);
        check(w !== null, 'the studio worker is running');
        if (w) {
          const before = hits;
          const r = await fetchFromWorker(w, probe);
          check(
            r.startsWith('blocked') && r.includes('CSP violation: connect-src'),
            `a cross-origin fetch from the studio worker is blocked by the CSP (${r.slice(0, 160)})`,
          );
          check(hits === before, `the other origin received no request (${hits - before})`);
          const same = await w.evaluate(async (u) => (await fetch(u)).status, `${origin}${BASE}sw.js`);
          check(same === 200, 'same-origin fetches from the worker still work');
        }
        const fromPage = await page.evaluate(
          async (u) =>
            fetch(u).then(
              () => 'reached',
              (e: Error) => `blocked: ${e.message}`,
            ),
          probe,
        );
        check(fromPage.startsWith('blocked'), 'a cross-origin fetch from the page is blocked too');
        // A second visit needs no reload.
        const again = await openStudio(b.context, `${origin}${BASE}`);
        check(again.navigations === 1, `a later visit loads once (${again.navigations} navigation(s))`);
      } finally {
        await b.close();
      }
    }
    // ---- control: service workers blocked, only the <meta> policy
    {
      const b = await launch('block');
      try {
        const { page, navigations } = await openStudio(b.context, `${origin}${BASE}`);
        check(navigations === 1, `without a service worker the studio starts once, no reload loop (${navigations} navigation(s))`);
        const w = await studioWorker(page);
        if (w) {
          const before = hits;
          const r = await fetchFromWorker(w, probe);
          check(
            r.startsWith('reached') && hits === before + 1,
            `control: with the <meta> policy alone the worker's fetch reaches the other origin (${r.slice(0, 60)}) — the header is what blocks it`,
          );
        } else check(false, 'control: the studio worker is running');
      } finally {
        await b.close();
      }
    }
    // ---- Vite preview sends the headers itself
    const server = await preview({
      root: repo,
      configFile: join(repo, 'vite.config.ts'),
      logLevel: 'warn',
      build: { outDir: out },
      preview: { host: '127.0.0.1', port: 0 },
    });
    try {
      const addr = server.httpServer.address();
      const base = typeof addr === 'object' && addr ? `http://127.0.0.1:${addr.port}/` : '';
      const page = await fetch(base);
      check(
        (page.headers.get('content-security-policy') ?? '').includes("connect-src 'self' blob: data:"),
        'vite preview: the page carries the CSP header',
      );
      check(page.headers.get('cross-origin-embedder-policy') === 'require-corp', 'vite preview: COEP require-corp');
      const workerAsset = readdirSync(join(out, 'assets')).find((f) => /^studio\.worker.*\.js$/.test(f));
      check(workerAsset, `the build has the studio worker script (${workerAsset ?? 'none'})`);
      if (workerAsset) {
        const wr = await fetch(`${base}assets/${workerAsset}`);
        check(
          (wr.headers.get('content-security-policy') ?? '').includes("connect-src 'self'"),
          'vite preview: the worker script carries the CSP header',
        );
      }
    } finally {
      await new Promise<void>((ok) => server.httpServer.close(() => ok()));
    }
  } finally {
    site.close();
    other.close();
    rmSync(out, { recursive: true, force: true });
  }
  console.log(failures.length ? `[privacy] ${failures.length} failure(s)` : '[privacy] all checks passed');
  return failures;
}

// Runs standalone (`npx tsx e2e/privacy.spec.ts`, the per-spec runner e2e/run.mjs) or as one test under the
// Playwright test runner (whose processes are started by the playwright package).
const underTestRunner =
  process.env.PLAYWRIGHT_TEST !== undefined ||
  process.env.TEST_WORKER_INDEX !== undefined ||
  process.argv.some((a) => /[\\/]playwright([\\/]|$)/.test(a));
if (underTestRunner) {
  const specifier = '@playwright/test';
  const pw = (await import(specifier)) as {
    test: ((name: string, fn: () => Promise<void>) => void) & { setTimeout(ms: number): void };
    expect: (v: unknown, message?: string) => { toEqual(v: unknown): void };
  };
  pw.test(
    'privacy: the studio worker cannot reach another origin (service worker on a static host; control without it; preview headers)',
    async () => {
      pw.test.setTimeout(600_000);
      pw.expect(await runChecks(), 'failed privacy checks').toEqual([]);
    },
  );
} else {
  runChecks().then(
    (f) => process.exit(f.length ? 1 : 0),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}

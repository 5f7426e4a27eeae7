// Launches Debian's Chromium through playwright-core (no browser downloads here) with the flags that give
// a WebGPU adapter in headless mode (without --enable-unsafe-webgpu no adapter comes back).
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // Lets tests trigger garbage collection (the WebGPU pool reclaims buffers of collected storage handles).
  '--js-flags=--expose-gc',
];

export interface LaunchedBrowser {
  context: BrowserContext;
  close(): Promise<void>;
}

/** Fresh user-data-dir per launch so no cached state leaks between runs. */
export async function launchChromium(extraArgs: string[] = []): Promise<LaunchedBrowser> {
  const userDataDir = mkdtempSync(join(tmpdir(), 'gradot-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true,
    args: [...CHROMIUM_ARGS, ...extraArgs],
  });
  return {
    context,
    async close() {
      await context.close().catch(() => undefined);
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

export type { Browser };

// Debian's Chromium (no browser downloads: `/usr/bin/chromium`, or CHROMIUM_PATH) with the flags that give a
// WebGPU adapter in headless mode: without --enable-unsafe-webgpu headless Chromium returns no adapter.
// Without a GPU the adapter is SwiftShader (`isFallbackAdapter: true`). Used by playwright.config.ts (the
// test runner's one browser) and by the standalone WebGPU benchmark.
import { type LaunchOptions, chromium, type BrowserContext } from '@playwright/test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

const BASE_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // Lets tests trigger garbage collection (the WebGPU pool reclaims buffers of collected storage handles).
  '--js-flags=--expose-gc',
];

/** Launch options for Debian's Chromium; `webgpu: false` leaves WebGPU off (the studio must fall back to the CPU). */
export function chromiumLaunchOptions(opts: { webgpu?: boolean; args?: string[] } = {}): LaunchOptions {
  const webgpu = opts.webgpu ?? true;
  return {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [...BASE_ARGS, ...(webgpu ? ['--enable-unsafe-webgpu'] : []), ...(opts.args ?? [])],
  };
}

/** A fresh-profile Chromium outside the test runner (the WebGPU benchmark script). */
export async function launchChromium(extraArgs: string[] = []): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const userDataDir = mkdtempSync(join(tmpdir(), 'gradot-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, chromiumLaunchOptions({ args: extraArgs }));
  return {
    context,
    async close() {
      await context.close().catch(() => undefined);
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

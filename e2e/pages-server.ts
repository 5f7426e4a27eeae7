// The test-page server (e2e/pages/vite.config.ts) started in-process on a free port, for the scripts and
// Node tests that drive Chromium outside the Playwright runner (the WebGPU benchmark, the OPFS store test).
// The runner itself starts the same server from playwright.config.ts.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'vite';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export interface PageServer {
  url(path: string): string;
  close(): Promise<void>;
}

export async function startServer(): Promise<PageServer> {
  const server = await createServer({ configFile: join(repoRoot, 'e2e/pages/vite.config.ts'), server: { port: 0 } });
  await server.listen();
  const addr = server.httpServer?.address();
  if (!addr || typeof addr === 'string') throw new Error('vite server has no TCP address');
  return { url: (p: string) => `http://127.0.0.1:${addr.port}/${p.replace(/^\//, '')}`, close: () => server.close() };
}

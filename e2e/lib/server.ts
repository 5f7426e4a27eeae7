// Serves the repo through Vite's dev server (so test pages import src/ TypeScript directly) on 127.0.0.1
// with a random free port.
import { createServer, type ViteDevServer } from 'vite';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface PageServer {
  url(path: string): string;
  close(): Promise<void>;
}

export async function startServer(): Promise<PageServer> {
  const server: ViteDevServer = await createServer({
    root: repoRoot,
    configFile: false,
    logLevel: 'warn',
    clearScreen: false,
    server: { host: '127.0.0.1', port: 0, strictPort: false, hmr: false, watch: null },
    optimizeDeps: { noDiscovery: true, include: [] },
    worker: { format: 'es' },
  });
  await server.listen();
  const addr = server.httpServer?.address();
  if (!addr || typeof addr === 'string') throw new Error('vite server has no TCP address');
  const base = `http://127.0.0.1:${addr.port}`;
  return {
    url: (path: string) => `${base}/${path.replace(/^\//, '')}`,
    close: () => server.close(),
  };
}

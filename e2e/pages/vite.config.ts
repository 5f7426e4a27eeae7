// The test-page server: Vite's dev server on the repository root, so the pages under e2e/pages/ import src/
// TypeScript directly (no build). Dependency discovery is off (a late discovery reloads the page mid-test);
// onnx-proto is pre-bundled because it is CommonJS and the ONNX page exports models in the browser.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  logLevel: 'warn',
  clearScreen: false,
  server: { host: '127.0.0.1', hmr: false, watch: null },
  optimizeDeps: { noDiscovery: true, include: ['onnx-proto'] },
  worker: { format: 'es' },
});

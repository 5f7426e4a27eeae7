import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';
import { SECURITY_HEADERS } from './src/faults/policy';

// `base: './'` makes the built site work from any static sub-path (DESIGN.md §6).
export default defineConfig({
  base: './',
  plugins: [react()],
  worker: { format: 'es' },
  build: { target: 'es2022', sourcemap: true },
  // The CSP as a header (workers do not inherit the page's <meta> policy) + cross-origin isolation; on
  // static hosts public/sw.js adds the same headers.
  server: { headers: { ...SECURITY_HEADERS } },
  preview: { headers: { ...SECURITY_HEADERS } },
});

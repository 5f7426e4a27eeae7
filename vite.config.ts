import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// Rolldown's plugin-timing check reports the one slow transform of each build: the worker's
// `new URL(..., import.meta.url)` transform runs the whole worker build inside it, and the asset transform
// scans the large onnxruntime-web / transformers.js modules once. Both are expected, so the check is off.
const checks = { pluginTimings: false };

// `base: './'` makes the built site work from any static sub-path.
export default defineConfig({
  base: './',
  plugins: [react()],
  worker: { format: 'es', rolldownOptions: { checks } },
  build: { target: 'es2022', sourcemap: true, rolldownOptions: { checks } },
});

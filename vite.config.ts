import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

/**
 * The studio's security headers, in one place. The Content-Security-Policy keeps every byte on this
 * origin: `connect-src 'self' blob: data:` is what stops a fetch to any other origin. A `<meta>` CSP only
 * binds the page — dedicated workers (the studio worker parses every user file and runs the models) take
 * their policy from the HTTP headers of their own script — so the policy must also be served as a header:
 * by Vite's dev and preview servers (here) and, on a plain static host that sends no headers, by
 * the service worker public/sw.js, which adds these headers to every same-origin response. COOP + COEP make
 * the page cross-origin isolated (SharedArrayBuffer for the CPU thread pool). public/sw.js carries a copy
 * of these strings (it is plain JavaScript served as is); a test keeps the copies identical.
 */
export const CONTENT_SECURITY_POLICY =
  "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self' blob:; connect-src 'self' blob: data:; " +
  "img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; font-src 'self'; object-src 'none'; base-uri 'self'";

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy': CONTENT_SECURITY_POLICY,
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'X-Content-Type-Options': 'nosniff',
};

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
  // The CSP as a header (workers do not inherit the page's <meta> policy) + cross-origin isolation; on
  // static hosts public/sw.js adds the same headers.
  server: { headers: { ...SECURITY_HEADERS } },
  preview: { headers: { ...SECURITY_HEADERS } },
});

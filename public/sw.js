// GradOT Studio's service worker: adds the security headers to every same-origin response, so that a plain
// static host (which sends none) still gives the page AND its workers the Content-Security-Policy (a worker
// takes its policy from its own script's headers, not from the page's <meta> tag) and makes the page
// cross-origin isolated (COOP + COEP, for SharedArrayBuffer). Requests to other origins are not touched:
// the browser makes them and the policy blocks them. The header values are those of vite.config.ts
// (a test keeps the two identical).
const HEADERS = {
  'Content-Security-Policy':
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self' blob:; connect-src 'self' blob: data:; " +
    "img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; font-src 'self'; object-src 'none'; base-uri 'self'",
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'X-Content-Type-Options': 'nosniff',
};

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (new URL(req.url).origin !== self.location.origin) return;
  if (req.cache === 'only-if-cached' && req.mode !== 'same-origin') return;
  event.respondWith(
    fetch(req).then((res) => {
      // Opaque and error responses cannot be rebuilt; redirects keep their own handling.
      if (res.status === 0 || res.type === 'opaqueredirect') return res;
      const headers = new Headers(res.headers);
      for (const [k, v] of Object.entries(HEADERS)) headers.set(k, v);
      return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
    }),
  );
});

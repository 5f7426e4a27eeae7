/**
 * Registers public/sw.js (the security-headers service worker) and, when the page is not yet controlled by
 * it and not cross-origin isolated, reloads ONCE so that the page and its workers are served with the
 * headers (the known coi-serviceworker pattern). A session flag prevents reload loops where service
 * workers cannot take control (private windows, disabled storage): the studio then starts without
 * isolation, its page still under the <meta> policy. Where the server already sends the headers (Vite dev
 * and preview), nothing is registered. The script URL is relative to the page, so any sub-path works.
 *
 * Resolves when the app may start; never resolves when a reload is under way (so nothing renders twice).
 */
const FLAG = 'gradot-sw-reloaded';

export async function ensureIsolation(opts: { timeoutMs?: number } = {}): Promise<void> {
  const g = globalThis as unknown as { crossOriginIsolated?: boolean; isSecureContext?: boolean };
  if (g.crossOriginIsolated) return;
  if (!g.isSecureContext || typeof navigator === 'undefined' || !('serviceWorker' in navigator)) return;
  const swc = navigator.serviceWorker;
  const ready = (async (): Promise<'render' | 'reload'> => {
    const reg = await swc.register(new URL('sw.js', document.baseURI), { scope: './' });
    if (swc.controller) {
      // Controlled but not isolated: the worker responded without the headers (e.g. an old version).
      sessionStorage.removeItem(FLAG);
      if (sessionStorage.getItem(`${FLAG}-controlled`)) return 'render';
      sessionStorage.setItem(`${FLAG}-controlled`, '1');
      return 'reload';
    }
    if (sessionStorage.getItem(FLAG)) return 'render'; // reloaded once already: do not loop
    const sw = reg.installing ?? reg.waiting ?? reg.active;
    if (sw && sw.state !== 'activated') {
      await new Promise<void>((ok) => {
        sw.addEventListener('statechange', () => sw.state === 'activated' && ok());
      });
    }
    sessionStorage.setItem(FLAG, '1');
    return 'reload';
  })();
  const timeout = new Promise<'render'>((ok) => setTimeout(() => ok('render'), opts.timeoutMs ?? 4000));
  let what: 'render' | 'reload';
  try {
    what = await Promise.race([ready, timeout]);
  } catch {
    return; // registration refused (blocked, unsupported): start without isolation
  }
  if (what === 'reload') {
    location.reload();
    await new Promise<never>(() => undefined);
  }
}

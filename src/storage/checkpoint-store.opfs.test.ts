import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

/**
 * The OPFS store can only run in a browser: this drives Debian's Chromium (as the e2e suite does) on a
 * blank page served by Vite's dev server, imports src/storage there, and runs the same commit /
 * crash / reload checks against the origin private file system. Skipped where Chromium is absent.
 */
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

// The page code is plain JavaScript in strings: a function passed to page.evaluate would be rewritten
// by Vitest's transform (its import() becomes an SSR helper that does not exist in the page).
const browserCode = (modUrl: string, body: string) => `(async () => { const URL_ = ${JSON.stringify(modUrl)};\n${body}\n})()`;

interface FirstResult {
  hasMove: boolean;
  note: string;
  list: string[];
}
interface SecondResult {
  latest?: string;
  loadedId?: string;
  loadedMeta?: unknown;
  bestByte?: number;
  step1Len?: number;
  step1State: string;
  temps: string[];
  removed: string[];
  after: string[];
  corrupt: string;
}

describe.skipIf(!existsSync(CHROMIUM))('OpfsBlobStore in Chromium', () => {
  it('commits, survives a simulated crash and a page reload, verifies, and garbage-collects', async () => {
    const { startServer } = await import('../../e2e/pages-server');
    const { launchChromium } = await import('../../e2e/chromium');
    const server = await startServer();
    const browser = await launchChromium();
    try {
      const page = await browser.context.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      await page.route('**/__opfs_blank.html', (r) => r.fulfill({ contentType: 'text/html', body: '<!doctype html><title>opfs</title>' }));
      const blank = server.url('__opfs_blank.html');
      const modUrl = '/src/storage/index.ts';

      await page.goto(blank);
      const first = (await page.evaluate(
        browserCode(
          modUrl,
          `
        const m = (await import(URL_));
        const s = m.opfsCheckpointStore('runs/test');
        const w = (n, v) => new Uint8Array(n).fill(v);
        await s.put('notes/a.txt', new TextEncoder().encode('one'));
        await s.put('notes/a.txt', new TextEncoder().encode('two')); // replace an existing file
        await s.commit('step-1', { 'w.bin': w(70_000, 1), 'state.json': new TextEncoder().encode('{"step":1}') }, { step: 1 });
        await s.commit('best', { 'w.bin': w(10, 7) }, { loss: 2 });
        await s.commit('best', { 'w.bin': w(10, 8) }, { loss: 1 });
        // What a tab closed mid-commit leaves: a complete file, a temp file, and the old manifest.
        await s.blobs.put('checkpoints/99-step-2/w.bin', w(5, 2));
        const root = await navigator.storage.getDirectory();
        const dir = await (await (await root.getDirectoryHandle('runs')).getDirectoryHandle('test')).getDirectoryHandle('checkpoints');
        const torn = await (await dir.getDirectoryHandle('99-step-2')).getFileHandle(\`state.json\${m.TEMP_MARKER}zz\`, { create: true });
        const wr = await torn.createWritable();
        await wr.write(new Uint8Array([1, 2, 3]));
        await wr.close();
        const probe = await root.getFileHandle('probe', { create: true });
        return {
          hasMove: typeof (probe).move === 'function',
          note: new TextDecoder().decode((await s.get('notes/a.txt')) ?? new Uint8Array()),
          list: await s.list(),
        };
`,
        ),
      )) as FirstResult;
      expect(first.note).toBe('two');
      expect(first.list).toContain('manifest.json');
      expect(first.list.filter((n) => n.includes('best'))).toHaveLength(1);

      await page.reload();
      const second = (await page.evaluate(
        browserCode(
          modUrl,
          `
        const m = (await import(URL_));
        const s = m.opfsCheckpointStore('runs/test');
        const latest = await s.latest();
        const loaded = await s.loadLatest();
        const step1 = await s.load('step-1');
        const temps = await s.listTemp();
        const removed = (await s.gc()).sort();
        const after = await s.list('checkpoints/');
        let corrupt = '';
        await s.blobs.put(\`\${step1.entry.dir}/w.bin\`, new Uint8Array(3));
        try {
          await s.load('step-1');
        } catch (e) {
          corrupt = e.code ?? String(e);
        }
        return {
          latest: latest?.id,
          loadedId: loaded?.entry.id,
          loadedMeta: loaded?.entry.meta,
          bestByte: loaded?.files['w.bin']?.[0],
          step1Len: step1.files['w.bin']?.length,
          step1State: new TextDecoder().decode(step1.files['state.json']),
          temps,
          removed,
          after,
          corrupt,
        };
`,
        ),
      )) as SecondResult;
      expect(second).toMatchObject({
        latest: 'best',
        loadedId: 'best',
        loadedMeta: { loss: 1 },
        bestByte: 8,
        step1Len: 70_000,
        step1State: '{"step":1}',
        corrupt: 'corrupt',
      });
      expect(second.temps).toEqual([`checkpoints/99-step-2/state.json${'.tmp-'}zz`]);
      expect(second.removed).toEqual(['checkpoints/99-step-2/state.json.tmp-zz', 'checkpoints/99-step-2/w.bin']);
      expect(second.after.every((n) => !n.includes('99-step-2'))).toBe(true);
      expect(errors).toEqual([]);
      console.log(`[opfs] FileSystemHandle.move available: ${first.hasMove}`);
    } finally {
      await browser.close();
      await server.close();
    }
  }, 120_000);
});

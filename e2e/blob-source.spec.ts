// The studio worker's ranged Blob reads in Chromium (workers/studio/blob-source.ts via
// e2e/pages/blob-source.ts): every range of a picked file (fresh random bytes), an in-memory Blob and a Blob
// of parts equals `slice().arrayBuffer()`, and none stalls. Reads through a BYOB reader stalled here (a read
// of the picked file never resolved after a dozen ranges, of the Blob of parts after 71), which left studio
// jobs waiting on "loading weights" for good.
import { randomFillSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RangeReport } from './pages/blob-source';
import { expect, pagesUrl, test } from './fixtures';

test('ranged Blob reads: the bytes of slice().arrayBuffer(), no read stalls', async ({ page }) => {
  test.setTimeout(300_000);
  const dir = mkdtempSync(join(tmpdir(), 'gradot-blob-'));
  try {
    const path = join(dir, 'model.safetensors');
    writeFileSync(path, randomFillSync(Buffer.alloc(16 * 2 ** 20 + 5)));
    await page.goto(pagesUrl('e2e/pages/blob-source.html'));
    await page.waitForFunction(() => window.__blobReady === true, null, { timeout: 60_000 });
    await page.setInputFiles('#file', path);
    const reports = (await page.evaluate(() => window.__readRanges!())) as RangeReport[];
    for (const r of reports)
      console.log(`  ${r.blob}: ${r.ranges} ranges, ${(r.bytes / 2 ** 20).toFixed(0)} MiB${r.error ? `, ${r.error}` : ''}`);
    for (const r of reports) {
      expect(r.error, r.blob).toBeUndefined();
      expect(r.ranges, r.blob).toBeGreaterThan(50);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

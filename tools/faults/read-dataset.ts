/** `npx tsx tools/faults/read-dataset.ts FILE`: reads a dataset through the CLI's reader and prints a summary. */
import { readFile } from 'node:fs/promises';
import { readDataset } from '../../src/data/read';
import { readDatasetFile } from '../../src/faults/data-file';

const file = process.argv[2]!;
const mode = process.argv[3] ?? 'bytes';
const t0 = performance.now();
const ds = mode === 'stream' ? await readDatasetFile(file, file) : readDataset(new Uint8Array(await readFile(file)), file);
console.log(
  JSON.stringify({ file, mode, kind: ds.kind, records: ds.records.length, seconds: +((performance.now() - t0) / 1000).toFixed(1) }),
);

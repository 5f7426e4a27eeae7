/**
 * Dataset files on disk (Node): what can be said from `stat` alone is said before a byte is read — a
 * folder where a file was expected, a file larger than the reader accepts (its size named), and a missing
 * file — and reading itself is streamed in chunks with progress.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { DatasetError } from '../data/errors';
import { readDatasetChunks, type StreamReadOptions } from '../data/read';
import type { Dataset } from '../data/types';
import { FileAccessError } from './errors';
import { fsError } from './fs-errors';
import { DATA_LIMITS, formatBytes } from './limits';

export async function checkDataFile(path: string, name = path, maxBytes: number = DATA_LIMITS.maxFileBytes): Promise<number> {
  let size: number;
  try {
    const s = await stat(path);
    if (s.isDirectory()) throw new FileAccessError(name, 'EISDIR', 'read the data file', 'it is a folder, not a file');
    size = s.size;
  } catch (e) {
    if (e instanceof FileAccessError) throw e;
    throw fsError(e, name, 'read the data file');
  }
  if (size > maxBytes) {
    throw new DatasetError(
      'too-large',
      name,
      null,
      `file is ${formatBytes(size)}, more than ${formatBytes(maxBytes)} (the limit for one dataset file); split it or sample it (records are held in memory)`,
    );
  }
  return size;
}

/** Streams a dataset file from disk through the chunked reader (1 MiB chunks), with progress. */
export async function readDatasetFile(path: string, name = path, opts: StreamReadOptions = {}): Promise<Dataset> {
  const size = await checkDataFile(path, name, opts.limits?.maxFileBytes ?? DATA_LIMITS.maxFileBytes);
  const stream = createReadStream(path, { highWaterMark: 1 << 20 });
  try {
    return await readDatasetChunks(stream as AsyncIterable<Uint8Array>, name, { ...opts, size });
  } catch (e) {
    throw fsError(e, name, 'read the data file');
  } finally {
    stream.destroy();
  }
}

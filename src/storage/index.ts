/**
 * Checkpoint storage: one `CheckpointStore` contract (checkpoint-store.ts) over a Node file-system store
 * (node.ts) or an origin-private-file-system store for the browser (opfs.ts).
 */
import type { ManifestCheckpointStore } from './checkpoint-store';
import { nodeCheckpointStore } from './node';
import { opfsCheckpointStore } from './opfs';

export * from './checkpoint-store';
export { NodeBlobStore, nodeCheckpointStore } from './node';
export { OpfsBlobStore, opfsCheckpointStore } from './opfs';

/**
 * OPFS where the page or worker has it, else the file system (Node): `location` is an OPFS folder path
 * or a directory path respectively.
 */
export function autoCheckpointStore(location: string): ManifestCheckpointStore {
  const nav = (globalThis as { navigator?: { storage?: { getDirectory?: unknown } } }).navigator;
  if (typeof nav?.storage?.getDirectory === 'function') return opfsCheckpointStore(location);
  return nodeCheckpointStore(location);
}

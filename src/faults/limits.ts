/**
 * Hard limits on untrusted inputs, in one place so that errors, docs and tests quote the same numbers.
 * Each is far above anything a real checkpoint, package or dataset of the sizes this project runs needs,
 * and low enough that a malicious or broken file is refused before it can spend memory or hang a job.
 */

/** .zip archives (emulator packages, adapter zips). */
export const ZIP_LIMITS = {
  /** Entries in one archive: a package holds 2-10 files. */
  maxEntries: 1000,
  /** Uncompressed bytes of one entry (2 GiB: the largest ArrayBuffer every browser allocates). */
  maxEntryBytes: 2 ** 31 - 1,
  /** Uncompressed bytes of all entries together. */
  maxTotalBytes: 2 ** 31 - 1,
  /**
   * Uncompressed / compressed bytes of one entry. Our packages are stored (ratio 1) and float weights
   * deflate by ~1.1x; text a few times. A zip bomb needs ratios of hundreds to thousands.
   */
  maxRatio: 100,
  /** Entries smaller than this are exempt from the ratio check (a tiny JSON compresses very well). */
  ratioExemptBytes: 1 << 20,
} as const;

export type ZipLimits = { -readonly [K in keyof typeof ZIP_LIMITS]: number };

/**
 * config.json values. The largest public decoders have ~128 layers, 16k-wide hidden states, 128 heads,
 * 256k vocabularies and 53k-wide MLPs; the bounds leave room above those and stop `1e9`-style values before
 * anything is sized from them.
 */
export const CONFIG_LIMITS = {
  layers: 1024,
  hiddenSize: 65536,
  intermediateSize: 262144,
  vocabSize: 4_194_304,
  heads: 1024,
  headDim: 4096,
  maxPositions: 1_048_576,
  /** Parameters of the whole model (a 100 B model is far beyond what a browser or this CPU path holds). */
  params: 100e9,
} as const;

/** Tensor entries in one safetensors header (real checkpoints have a few thousand at most). */
export const MAX_SAFETENSORS_ENTRIES = 100_000;

/** Datasets. */
export const DATA_LIMITS = {
  /**
   * Bytes of one dataset file. Records are held in memory as strings (2 bytes a character in the worst
   * case), so several GB of text do not fit a browser tab or Node's default heap.
   */
  maxFileBytes: 1 << 30,
  /** Bytes of one line (one JSON Lines record or one text line). */
  maxLineBytes: 16 << 20,
  /** CSV is parsed as one string (quoted cells may span lines): V8's string limit is ~512 M characters. */
  maxCsvBytes: 256 << 20,
} as const;

export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} bytes`;
}

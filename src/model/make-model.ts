/**
 * Writes a hub-shaped random checkpoint folder (config.json, model.safetensors, tokenizer.json,
 * tokenizer_config.json; see hub-models.ts) to disk. Node only.
 *
 * The safetensors file is streamed: the header is computed from the tensor list, then every tensor is
 * generated and encoded in fixed-size chunks and appended, so memory stays at a few MB whatever the model
 * size (TinyLlama's 1.1 B parameters never exist in memory at once). Each tensor draws from its own PRNG
 * stream seeded by (seed, name), so the bytes are deterministic and independent of chunking.
 */
import { mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gaussian } from './random-model';
import { f32BitsToBF16, f32BitsToHalf } from './safetensors';
import { HUB_MODELS, hubTensors, syntheticBpeTokenizer, type HubFamily, type HubTensor } from './hub-models';
import type { HFConfig } from './hf';
import type { ModelSpec } from './spec';

const CHUNK = 1 << 20;
const SIZE = { F32: 4, F16: 2, BF16: 2 } as const;

/** FNV-1a of the name mixed with the seed: one independent stream per tensor. */
function tensorSeed(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The header bytes (padded to 8 like the Rust writer) and the total data size. */
export function safetensorsHeader(tensors: HubTensor[], metadata: Record<string, string>): { header: Uint8Array; dataBytes: number } {
  const h: Record<string, unknown> = { __metadata__: metadata };
  let off = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1) * SIZE[t.dtype];
    h[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + n] };
    off += n;
  }
  let json = new TextEncoder().encode(JSON.stringify(h));
  const pad = (8 - (json.length % 8)) % 8;
  const out = new Uint8Array(8 + json.length + pad).fill(0x20);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length + pad), true);
  out.set(json, 8);
  json = out;
  return { header: json, dataBytes: off };
}

/** Fills `dst` (F32) with elements [start, start + dst.length) of tensor `t`. `g` continues the tensor's stream. */
function fillChunk(t: HubTensor, dst: Float32Array, start: number, g: () => number): void {
  const init = t.init;
  if (init.kind === 'const') dst.fill(init.value);
  else if (init.kind === 'causal-mask') {
    const n = t.shape[t.shape.length - 1]!;
    for (let i = 0; i < dst.length; i++) {
      const k = start + i;
      const row = Math.floor(k / n) % n;
      dst[i] = k % n <= row ? 1 : 0;
    }
  } else {
    for (let i = 0; i < dst.length; i++) dst[i] = init.std * g();
    if (init.zeroRow !== undefined) {
      const cols = t.shape[1]!;
      const a = init.zeroRow * cols,
        b = a + cols;
      for (let k = Math.max(a, start); k < Math.min(b, start + dst.length); k++) dst[k - start] = 0;
    }
  }
}

function encodeChunk(src: Float32Array, dtype: HubTensor['dtype']): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  const cvt = dtype === 'F16' ? f32BitsToHalf : f32BitsToBF16;
  for (let i = 0; i < src.length; i++) out[i] = cvt(bits[i]!);
  return new Uint8Array(out.buffer);
}

export interface MakeModelOptions {
  seed?: number;
  /** config.json keys to replace (e.g. fewer layers for a test); names and dtypes stay the hub's. */
  overrides?: HFConfig;
  /** Called after each tensor with bytes written so far and in total. */
  onProgress?: (doneBytes: number, totalBytes: number, tensor: string) => void;
}

export interface MadeModel {
  dir: string;
  spec: ModelSpec;
  files: string[];
  bytes: number;
  params: number;
}

/** Writes the hub-shaped folder for `family` into `dir` (created; existing files of the same names are replaced). */
export async function makeHubModel(family: HubFamily, dir: string, opts: MakeModelOptions = {}): Promise<MadeModel> {
  const def = HUB_MODELS[family];
  const seed = opts.seed ?? 0;
  const { spec, config, tensors } = hubTensors(family, opts.overrides);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  // A shrunk vocab_size (tests) moves the specials to the last ids.
  const V = spec.vocabSize;
  const specials = def.specials.every((s) => s.id < V)
    ? def.specials
    : def.specials.map((s, k) => ({ ...s, id: V - def.specials.length + k }));
  const tok = syntheticBpeTokenizer(V, specials);
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tok) + '\n');
  await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(def.tokenizerConfig, null, 2) + '\n');
  const { header, dataBytes } = safetensorsHeader(tensors, { format: 'pt' });
  const fh = await open(join(dir, 'model.safetensors'), 'w');
  let params = 0;
  try {
    await fh.write(header);
    const buf = new Float32Array(CHUNK);
    let done = 0;
    for (const t of tensors) {
      const n = t.shape.reduce((a, b) => a * b, 1);
      if (t.init.kind !== 'causal-mask') params += n;
      const g = gaussian(tensorSeed(seed, t.name));
      for (let s = 0; s < n; s += CHUNK) {
        const view = buf.subarray(0, Math.min(CHUNK, n - s));
        fillChunk(t, view, s, g);
        const bytes = encodeChunk(view, t.dtype);
        await fh.write(bytes);
        done += bytes.length;
      }
      opts.onProgress?.(done, dataBytes, t.name);
    }
  } finally {
    await fh.close();
  }
  return {
    dir,
    spec,
    files: ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'],
    bytes: header.length + dataBytes,
    params,
  };
}

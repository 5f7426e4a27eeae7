import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LimitError } from './errors';
import { MAX_SAFETENSORS_ENTRIES } from './limits';
import { checkSpecBounds } from './bounds';
import { planHFLoad, specFromHFConfig } from '../model/hf';
import { parseSafetensors, parseSafetensorsHeader, serializeSafetensors } from '../model/safetensors';
import { SafetensorsError } from '../model/errors';
import { MemorySource } from '../model/source';

const FIX = join(__dirname, '../model/__fixtures__/gpt2');
const config = (): Record<string, unknown> => JSON.parse(readFileSync(join(FIX, 'config.json'), 'utf8')) as Record<string, unknown>;
const weights = (): Uint8Array => new Uint8Array(readFileSync(join(FIX, 'model.safetensors')));

/** A safetensors file from a header text and a data section. */
function rawSafetensors(header: string, data = new Uint8Array(0)): Uint8Array {
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

describe('safetensors headers that lie', () => {
  it('a tensor name listed twice is an error, not "last one wins"', () => {
    const data = new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer);
    const hdr = '{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}';
    const f = rawSafetensors(hdr, data);
    let err: unknown;
    try {
      parseSafetensors(f, 'dup.safetensors');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SafetensorsError);
    expect((err as SafetensorsError).code).toBe('duplicate-name');
    expect(String(err)).toMatch(/dup\.safetensors \[w\]: the header lists this tensor name twice/);
    // Escaped spellings of the same name are the same name.
    const esc = '{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"\\u0077":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}';
    expect(() => parseSafetensors(rawSafetensors(esc, data), 'esc.safetensors')).toThrow(/twice/);
    // Nested keys ("dtype" in every entry) are not top-level names.
    expect(
      parseSafetensors(
        rawSafetensors(
          '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
          data.subarray(0, 8),
        ),
        'ok',
      ).tensors.size,
    ).toBe(2);
  });

  it('1.4 M zero-size entries: refused by count in bounded time and memory, with the limit named', () => {
    const parts: string[] = ['{'];
    for (let i = 0; i < 1_400_000; i++) parts.push(`${i ? ',' : ''}"t${i}":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`);
    parts.push('}');
    const file = rawSafetensors(parts.join(''));
    const rss0 = process.memoryUsage().rss;
    const t0 = performance.now();
    let err: unknown;
    try {
      parseSafetensorsHeader(file, 'many.safetensors');
    } catch (e) {
      err = e;
    }
    const ms = performance.now() - t0;
    expect(err).toBeInstanceOf(LimitError);
    expect(String(err)).toMatch(
      new RegExp(`many\\.safetensors: the header lists more than ${MAX_SAFETENSORS_ENTRIES} entries \\(limit safetensors entries`),
    );
    // The count is checked while scanning, before JSON.parse builds 1.4 M objects (2.3 GB before).
    expect(process.memoryUsage().rss - rss0).toBeLessThan(2 * file.length + (64 << 20));
    expect(ms).toBeLessThan(20_000); // generous: a shared 2-core machine; it was 57 s before
  });
});

describe('config.json bounds', () => {
  it('num_hidden_layers: 1e9 is a named error, immediately (it hung at 2.8 GB before)', async () => {
    const c = config();
    c.n_layer = 1e9;
    const t0 = performance.now();
    await expect(
      planHFLoad(new MemorySource({ 'config.json': JSON.stringify(c), 'model.safetensors': weights() }, 'huge')),
    ).rejects.toThrow(/config\.json: 'n_layer' is 1000000000, above any supported model \(limit layers <= 1024\)/);
    expect(performance.now() - t0).toBeLessThan(5000);
  });

  it.each([
    ['n_embd', 1 << 20, 'hiddenSize'],
    ['vocab_size', 1e9, 'vocabSize'],
    ['n_head', 100000, 'heads'],
    ['n_inner', 1e8, 'intermediateSize'],
    ['n_positions', 1e9, 'maxPositions'],
  ])('%s = %d is refused (limit %s)', (key, v, limit) => {
    const c = config();
    c[key] = v;
    expect(() => specFromHFConfig(c)).toThrow(LimitError);
    expect(() => specFromHFConfig(c)).toThrow(new RegExp(`limit ${limit}`));
  });

  it('dimensions that are each plausible but together describe > 100 B parameters are refused', () => {
    const spec = specFromHFConfig(config());
    const big = {
      ...spec,
      hiddenSize: 65536,
      intermediateSize: 262144,
      numHeads: 512,
      headDim: 128,
      layers: Array.from({ length: 1000 }, (_, i) => ({ source: i, ranks: {}, mlpWidth: 262144 })),
    };
    expect(() => checkSpecBounds(big, 'emulator.json')).toThrow(
      /emulator\.json: the dimensions describe a model of up to .* B parameters \(limit params/,
    );
    expect(() => checkSpecBounds(spec, 'config.json')).not.toThrow();
  });

  it("config dimensions are checked against the file's tensors before any data is read", async () => {
    const c = config();
    c.n_layer = 900;
    await expect(planHFLoad(new MemorySource({ 'config.json': JSON.stringify(c), 'model.safetensors': weights() }, 'm'))).rejects.toThrow(
      /missing tensor 'transformer\.h\.2\./,
    );
  });

  it('thousands of unexpected tensors give one summarized warning', async () => {
    const base = parseSafetensors(weights()).tensors;
    for (let i = 0; i < 3000; i++) base.set(`junk.${i}`, { dtype: 'F32', shape: [0], data: new Float32Array(0) });
    const plan = await planHFLoad(
      new MemorySource({ 'config.json': JSON.stringify(config()), 'model.safetensors': serializeSafetensors(base) }, 'm'),
    );
    const junk = plan.warnings.filter((w) => w.includes('junk'));
    expect(junk).toHaveLength(1);
    expect(junk[0]).toMatch(/model\.safetensors: 3000 unexpected tensors ignored \('junk\.0'/);
  });
});

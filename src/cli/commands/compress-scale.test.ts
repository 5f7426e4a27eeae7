import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../main';
import { makeHubModel } from '../../model/make-model';
import { parseSafetensorsHeader } from '../../model/safetensors';
import { captureIO } from '../test-io';
import { parseBytes } from './compress';
import { readFile } from 'node:fs/promises';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gradot-compress-scale-'));
  await makeHubModel('opt-125m', join(dir, 'opt'), {
    overrides: {
      num_hidden_layers: 4,
      hidden_size: 32,
      num_attention_heads: 4,
      ffn_dim: 64,
      max_position_embeddings: 64,
      word_embed_proj_dim: 32,
      vocab_size: 600,
    },
  });
  await mkdir(join(dir, 'data'));
  const rows = Array.from({ length: 30 }, (_, i) =>
    JSON.stringify({ text: `The river ${i} ran past the old stone house and the warm field, again and again.` }),
  );
  await writeFile(join(dir, 'data', 'support.jsonl'), rows.join('\n') + '\n');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('gradot compress at scale: budget, dtype, report', () => {
  it('parseBytes', () => {
    expect(parseBytes('2GB')).toBe(2 * 2 ** 30);
    expect(parseBytes('1.5 GiB')).toBe(1.5 * 2 ** 30);
    expect(parseBytes('512mb')).toBe(512 * 2 ** 20);
    expect(() => parseBytes('lots')).toThrow(/size like/);
    expect(() => parseBytes('1MB')).toThrow(/at least 64MB/);
  });

  it('an F16 hub-shaped model gives an F16 package (F32 with --f32), reports peak RSS by phase, takes --memory-budget', async () => {
    for (const f32 of [false, true]) {
      const out = join(dir, f32 ? 'emu32' : 'emu16');
      const c = captureIO();
      const code = await main(
        [
          'compress',
          join(dir, 'opt'),
          '--method',
          'gradot',
          '--keep',
          '0.5',
          '--support',
          join(dir, 'data', 'support.jsonl'),
          '--out',
          out,
          '--adapters',
          '1:1',
          '--seq',
          '16',
          '--batch',
          '2',
          '--support-batches',
          '2',
          '--memory-budget',
          '64MB',
          '--json',
          ...(f32 ? ['--f32'] : []),
        ],
        c.io,
      );
      if (code !== 0) console.log(c.err.join('\n'), c.out.join('\n'));
      expect(code).toBe(0);
      const j = JSON.parse(c.out[0]!) as Record<string, unknown>;
      expect(Object.keys(j.phaseMaxRssMB as object)).toEqual(['loading', 'support', 'compress', 'evaluate', 'heldout', 'package', 'write']);
      expect(j.cpuSeconds).toBeGreaterThan(0);
      const header = parseSafetensorsHeader(new Uint8Array(await readFile(join(out, 'emulator.safetensors'))));
      expect(new Set([...header.entries.values()].map((e) => e.dtype))).toEqual(new Set([f32 ? 'F32' : 'F16']));
      expect(c.err.some((l) => l.startsWith('compress: support'))).toBe(true);
    }
  }, 120_000);
});

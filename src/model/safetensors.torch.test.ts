/**
 * Cross-checks our safetensors bytes and f32 -> f16/bf16 rounding against PyTorch (Debian's
 * /usr/bin/python3 with torch). Skipped where that interpreter or torch is missing.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { floatToBF16, floatToHalf, parseSafetensors, serializeSafetensors } from './safetensors';
import { gaussian, mulberry32 } from './random-model';

const PY = '/usr/bin/python3';
const hasTorch = spawnSync(PY, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;

const SCRIPT = `
import json, struct, sys, torch
def read(path):
    raw = open(path, 'rb').read()
    n = struct.unpack('<Q', raw[:8])[0]
    h = json.loads(raw[8:8 + n].decode('utf-8'))
    dt = {'F32': torch.float32, 'F16': torch.float16, 'BF16': torch.bfloat16}
    out = {}
    for k, v in h.items():
        if k == '__metadata__':
            continue
        s, e = v['data_offsets']
        out[k] = torch.frombuffer(bytearray(raw[8 + n + s:8 + n + e]), dtype=dt[v['dtype']]).reshape(v['shape'])
    return out, h.get('__metadata__'), n
src, meta, n = read(sys.argv[1])
f16, _, _ = read(sys.argv[2])
x = src['x']
res = {
  'n_mod_8': n % 8,
  'meta': meta,
  'shape': list(src['w'].shape),
  'w_sum': float(src['w'].double().sum()),
  'f16_bits': x.to(torch.float16).view(torch.int16).to(torch.int32).bitwise_and(0xffff).tolist(),
  'bf16_bits': x.to(torch.bfloat16).view(torch.int16).to(torch.int32).bitwise_and(0xffff).tolist(),
  'f16_file_as_f32_bits': f16['x'].float().view(torch.int32).tolist(),
}
json.dump(res, open(sys.argv[3], 'w'))
`;

function testValues(): Float32Array {
  const u = mulberry32(99);
  const vals: number[] = [
    0,
    -0,
    1,
    -1,
    65504,
    65519,
    65520,
    1e6,
    -1e6,
    Infinity,
    -Infinity,
    NaN,
    2 ** -24,
    2 ** -25,
    3 * 2 ** -25,
    2 ** -14,
    2 ** -14 - 2 ** -25,
    1 + 2 ** -11,
    1 + 3 * 2 ** -11,
    1 + 2 ** -8,
    1 + 3 * 2 ** -8,
    3.4e38,
    1e-45,
  ];
  for (let i = 0; i < 3000; i++) {
    const e = Math.floor(u() * 48) - 30;
    vals.push((u() < 0.5 ? -1 : 1) * (1 + u()) * 2 ** e);
  }
  // exact f16 halfway points (tie cases) across exponents
  for (let e = -24; e < 16; e++) vals.push((1 + (2 * Math.floor(u() * 512) + 1) / 2048) * 2 ** e);
  return Float32Array.from(vals);
}

describe.skipIf(!hasTorch)('safetensors vs PyTorch', () => {
  it('torch reads our files; our f16/bf16 rounding is bit-identical to torch', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'gradot-st-torch-'));
    try {
      const x = testValues();
      const g = gaussian(5);
      const w = Float32Array.from({ length: 7 * 3 }, () => g());
      const a = join(dir, 'a.safetensors');
      const b = join(dir, 'b.safetensors');
      const out = join(dir, 'out.json');
      const tensors = new Map([
        ['x', { dtype: 'F32' as const, shape: [x.length], data: x }],
        ['w', { dtype: 'F32' as const, shape: [7, 3], data: w }],
      ]);
      await writeFile(a, serializeSafetensors(tensors, { metadata: { format: 'pt', note: 'ünïcode' } }));
      await writeFile(b, serializeSafetensors(new Map([['x', tensors.get('x')!]]), { dtype: 'F16' }));
      await writeFile(join(dir, 's.py'), SCRIPT);
      const r = spawnSync(PY, [join(dir, 's.py'), a, b, out], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const res = JSON.parse(await readFile(out, 'utf8'));
      expect(res.n_mod_8).toBe(0);
      expect(res.meta).toEqual({ format: 'pt', note: 'ünïcode' });
      expect(res.shape).toEqual([7, 3]);
      expect(res.w_sum).toBeCloseTo(
        w.reduce((s, v) => s + v, 0),
        4,
      );
      const mine16 = Array.from(x, floatToHalf);
      const mineBF = Array.from(x, floatToBF16);
      for (let i = 0; i < x.length; i++) {
        if (Number.isNaN(x[i])) {
          expect(mine16[i]! & 0x7c00).toBe(0x7c00);
          continue;
        }
        expect(mine16[i], `f16 of ${x[i]}`).toBe(res.f16_bits[i]);
        expect(mineBF[i], `bf16 of ${x[i]}`).toBe(res.bf16_bits[i]);
      }
      // torch's f16 -> f32 of our F16 file equals our decoding of it
      const back = parseSafetensors(await readFile(b)).tensors.get('x')!.data;
      const tv = res.f16_file_as_f32_bits as number[];
      const backBits = new Int32Array(back.buffer, back.byteOffset, back.length);
      for (let i = 0; i < x.length; i++) {
        if (Number.isNaN(back[i]!)) continue;
        expect(backBits[i], `decoded f16 of ${x[i]}`).toBe(tv[i]);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

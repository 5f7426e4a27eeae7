/**
 * tools/pretrain/train.py is resumable: a tiny run split into two sessions (--stop-at-step, then --resume)
 * ends with exactly the weights, optimizer state and history of one uninterrupted run. Runs Debian's
 * /usr/bin/python3 with torch; skipped where that interpreter or torch is missing.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const PY = '/usr/bin/python3';
const hasTorch = spawnSync(PY, ['-c', 'import torch, numpy'], { encoding: 'utf8' }).status === 0;
const TRAIN = join(__dirname, 'train.py');

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gradot-pretrain-resume-'));
  // Random token ids (fresh, not zeros) as the corpus.
  let s = 12345;
  const ids = (n: number) => {
    const a = new Uint16Array(n);
    for (let i = 0; i < n; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      a[i] = s % 64;
    }
    return new Uint8Array(a.buffer);
  };
  await writeFile(join(dir, 'train.bin'), ids(4096));
  await writeFile(join(dir, 'valid.bin'), ids(1024));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const TINY = [
  '--layers',
  '1',
  '--hidden',
  '16',
  '--heads',
  '2',
  '--kv-heads',
  '1',
  '--ffn',
  '32',
  '--ctx',
  '16',
  '--vocab',
  '64',
  '--tokens',
  String(12 * 2 * 16),
  '--batch',
  '2',
  '--warmup',
  '3',
  '--eval-every',
  '4',
  '--eval-tokens',
  '64',
  '--threads',
  '1',
  '--export',
  '',
];

function train(runDir: string, extra: string[] = []): { status: number | null; out: string } {
  const r = spawnSync(PY, [TRAIN, ...TINY, '--data', dir, '--run-dir', join(dir, runDir), ...extra], { encoding: 'utf8' });
  return { status: r.status, out: r.stdout + r.stderr };
}

const COMPARE = `
import sys, torch
a, b = torch.load(sys.argv[1]), torch.load(sys.argv[2])
assert a["step"] == b["step"] == 12, (a["step"], b["step"])
for k in a["model"]:
    assert torch.equal(a["model"][k], b["model"][k]), k
sa, sb = a["opt"]["state"], b["opt"]["state"]
assert sa.keys() == sb.keys()
for i in sa:
    for k in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(sa[i][k], sb[i][k]), (i, k)
assert [h["val_loss"] for h in a["history"]] == [h["val_loss"] for h in b["history"]]
assert len(a["history"]) == 3
print("identical")
`;

describe.skipIf(!hasTorch)('train.py --resume', () => {
  it('two sessions (stop at step 5, resume) equal one run, bit for bit', () => {
    const one = train('one');
    expect(one.status, one.out).toBe(0);
    const first = train('halves', ['--stop-at-step', '5']);
    expect(first.status, first.out).toBe(0);
    expect(first.out).toContain('stopped at step 5');
    // An existing checkpoint is never restarted over silently.
    const again = train('halves');
    expect(again.status).not.toBe(0);
    expect(again.out).toContain('pass --resume');
    const second = train('halves', ['--resume']);
    expect(second.status, second.out).toBe(0);
    expect(second.out).toContain('resumed from step 5');
    const cmp = spawnSync(PY, ['-c', COMPARE, join(dir, 'one/ckpt.pt'), join(dir, 'halves/ckpt.pt')], { encoding: 'utf8' });
    expect(cmp.stdout + cmp.stderr).toContain('identical');
  });

  it('refuses to resume with another model shape, naming the argument', () => {
    const r = train('one', ['--resume', '--hidden', '32']);
    expect(r.status).not.toBe(0);
    expect(r.out).toMatch(/--hidden 16, not 32/);
  });
});

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readTaskFile, resolveDataPath } from './commands/ot-shared';

describe('data arguments take bundled task names', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'gradot-data-arg-'));
  writeFileSync(join(cwd, 'mine.jsonl'), '{"text": "hello"}\n');

  it('a file path stays a file path', () => {
    expect(resolveDataPath('mine.jsonl', 'train', cwd)).toBe(join(cwd, 'mine.jsonl'));
  });
  it('a bundled task name means its split file', async () => {
    expect(resolveDataPath('genre-short-mc', 'train', cwd)).toMatch(/public\/data\/genre-short-mc\/train\.jsonl$/);
    expect(resolveDataPath('genre-short-mc', 'valid', cwd)).toMatch(/genre-short-mc\/valid\.jsonl$/);
    const f = await readTaskFile('genre-short-mc', cwd);
    expect(f.name).toBe('genre-short-mc/train.jsonl');
    // Read streamed (no whole-file bytes): the task's first record is there.
    expect(f.dataset?.records.length).toBeGreaterThan(0);
  });
  it('neither a file nor a task: null, and reading names the argument', async () => {
    expect(resolveDataPath('no-such-task', 'train', cwd)).toBeNull();
    await expect(readTaskFile('no-such-task', cwd)).rejects.toThrow(/no-such-task/);
  });
});

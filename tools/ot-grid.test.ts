import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain ESM script without types
import { GRID, cells, cellFile, harvest, lockedByOther } from './ot-grid.mjs';

const dir = mkdtempSync(join(tmpdir(), 'ot-grid-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('tools/ot-grid.mjs', () => {
  it('runs the new task and genre-short-mc at seed 0, keep 0.3 first, and every cell once', () => {
    const cs = cells(GRID) as { task: string; seed: number; keep: number }[];
    expect(cs.slice(0, 4)).toEqual([
      { task: 'spam-mc', seed: 0, keep: 0.3 },
      { task: 'genre-short-mc', seed: 0, keep: 0.3 },
      { task: 'spam-mc', seed: 0, keep: 0.2 },
      { task: 'genre-short-mc', seed: 0, keep: 0.2 },
    ]);
    expect(cs.length).toBe(GRID.tasks.length * GRID.seeds.length * GRID.keeps.length);
    expect(new Set(cs.map((c) => `${c.task}/${c.seed}/${c.keep}`)).size).toBe(cs.length);
    expect(GRID.methods).toEqual(['gradot', 'gradot-paper', 'svd', 'prune', 'drop']);
  });

  it("collects a killed run's finished reports and failures once, never overwriting a result", () => {
    const c = { task: 'spam-mc', seed: 1, keep: 0.2 };
    const work = join(dir, 'work');
    const out = join(dir, 'out');
    mkdirSync(work);
    mkdirSync(out);
    writeFileSync(join(work, 'report-gradot-paper-0.2.json'), '{"method":"gradot","variant":"gradot-paper"}');
    writeFileSync(join(work, 'report-svd-0.3.json'), '{"method":"svd"}'); // another keep: not this cell's
    writeFileSync(join(work, 'failed.json'), JSON.stringify([{ keep: 0.2, method: 'prune', seed: 1, error: 'below its floor' }]));
    writeFileSync(cellFile(c, 'drop', out), '{"method":"drop","kept":true}');
    writeFileSync(join(work, 'report-drop-0.2.json'), '{"method":"drop"}');
    expect(harvest(c, work, out)).toBe(1);
    expect(readdirSync(out).sort()).toEqual([
      'spam-mc-keep0.2-seed1-drop.json',
      'spam-mc-keep0.2-seed1-gradot-paper.json',
      'spam-mc-keep0.2-seed1-prune.json',
    ]);
    expect(JSON.parse(readFileSync(cellFile(c, 'drop', out), 'utf8')).kept).toBe(true);
    expect(JSON.parse(readFileSync(cellFile(c, 'prune', out), 'utf8'))).toMatchObject({ method: 'prune', failed: 'below its floor' });
    expect(harvest(c, work, out)).toBe(0);
  });
});

describe('tools/ot-grid.mjs locks', () => {
  it('a cell locked by a live process is left to it; a stale or own lock is not', () => {
    const lock = join(dir, 'cell.lock');
    expect(lockedByOther(lock)).toBe(false);
    writeFileSync(lock, String(process.ppid)); // the test runner's parent: alive
    expect(lockedByOther(lock)).toBe(true);
    writeFileSync(lock, String(process.pid));
    expect(lockedByOther(lock)).toBe(false);
    writeFileSync(lock, '2147483646'); // no such process
    expect(lockedByOther(lock)).toBe(false);
  });
});

#!/usr/bin/env node
/**
 * The headline offsite-tuning grid on the demo model: tasks × seeds × budgets (keep) × methods, one
 * `gradot ot` run per cell (task, seed, keep) with every method of the cell not yet done, and one JSON per
 * (cell, method) in docs/ot-demo/grid/ (`<task>-keep<K>-seed<S>-<method>.json`: the method's OT report,
 * or `{failed}` for a method that cannot run at that keep, e.g. prune below its floor). Resumable: cells
 * and methods already written are skipped, and the reports a killed run had finished are collected from
 * its work folder on the next start. Several grid processes may run side by side: a cell being run by
 * one (a `<cell>.lock` naming a live process in the work folder) is skipped by the others. Cells run most-informative first (the new task and genre-short-mc,
 * seed 0, keep 0.3 first), so a run cut short by time still answers the main question.
 *
 *   node tools/ot-grid.mjs run [--threads 1] [--limit-test 300] [--tasks a,b] [--seeds 0,1,2] [--keeps 0.3,0.2] [--dry]
 *   node tools/ot-grid.mjs table        # Markdown tables of what is done (docs/offsite-tuning.md, "Grid")
 *
 * Every run uses `gradot ot`'s default tuning recipe (src/jobs/tune-defaults.ts, full adapter blocks),
 * adapters 1:1, --full-ft (once per cell), the task's first --limit-test test items.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(ROOT, 'docs', 'ot-demo', 'grid');
const MODEL = 'public/models/demo';
export const GRID = {
  tasks: ['spam-mc', 'genre-short-mc', 'genre-mc', 'imdb-sentiment-mc'],
  seeds: [0, 1, 2],
  keeps: [0.3, 0.2],
  methods: ['gradot', 'gradot-paper', 'svd', 'prune', 'drop'],
  adapters: '1:1',
  limitTest: 300,
};

function flag(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
}
const list = (s, f = (x) => x) => s.split(',').map((x) => f(x.trim()));

/**
 * Cells in the order they run: per seed, the first two tasks (the new task and genre-short-mc) at every keep,
 * then the others; within each, keep 0.3 first.
 */
export function cells(g) {
  const out = [];
  const tiers = [g.tasks.slice(0, 2), g.tasks.slice(2)];
  for (const seed of g.seeds) for (const tier of tiers) for (const keep of g.keeps) for (const task of tier) out.push({ task, seed, keep });
  return out;
}

export const cellFile = (c, method, out = OUT) => join(out, `${c.task}-keep${c.keep}-seed${c.seed}-${method}.json`);

/** True when `lock` names a live process other than this one. */
export function lockedByOther(lock) {
  if (!existsSync(lock)) return false;
  const pid = Number(readFileSync(lock, 'utf8'));
  if (!(pid > 0) || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Copies the finished reports (and failures) of a cell's work folder into `out`; returns how many. */
export function harvest(c, work, out = OUT) {
  if (!existsSync(work)) return 0;
  let n = 0;
  for (const f of readdirSync(work)) {
    const m = /^report-(.+)-([\d.]+)\.json$/.exec(f);
    if (m && Number(m[2]) === c.keep && !existsSync(cellFile(c, m[1], out))) {
      writeFileSync(cellFile(c, m[1], out), readFileSync(join(work, f)));
      n++;
    }
  }
  const failed = join(work, 'failed.json');
  if (existsSync(failed))
    for (const f of JSON.parse(readFileSync(failed, 'utf8')))
      if (!existsSync(cellFile(c, f.method, out)))
        writeFileSync(cellFile(c, f.method, out), `${JSON.stringify({ ...c, method: f.method, failed: f.error }, null, 1)}\n`);
  return n;
}

function run() {
  const g = {
    ...GRID,
    tasks: list(flag('tasks', GRID.tasks.join(','))),
    seeds: list(flag('seeds', GRID.seeds.join(',')), Number),
    keeps: list(flag('keeps', GRID.keeps.join(',')), Number),
    methods: list(flag('methods', GRID.methods.join(','))),
    limitTest: Number(flag('limit-test', GRID.limitTest)),
  };
  const threads = flag('threads', '1');
  const workRoot = flag('work', '/tmp/ot-grid');
  mkdirSync(OUT, { recursive: true });
  for (const c of cells(g)) {
    const tag = `${c.task}-keep${c.keep}-seed${c.seed}`;
    // Reports a killed run finished are in its work folders: collect them first.
    if (existsSync(workRoot)) for (const d of readdirSync(workRoot)) if (d.startsWith(`${tag}-`)) harvest(c, join(workRoot, d));
    const todo = g.methods.filter((m) => !existsSync(cellFile(c, m)));
    if (todo.length === 0) continue;
    // Another grid process is on this cell (several may run side by side): leave it to that one.
    const lock = join(workRoot, `${tag}.lock`);
    if (lockedByOther(lock)) continue;
    writeFileSync(lock, String(process.pid));
    const haveFullFT = g.methods.some((m) => existsSync(cellFile(c, m)) && JSON.parse(readFileSync(cellFile(c, m), 'utf8')).fullFT != null);
    const work = join(workRoot, `${tag}-${Date.now()}`);
    const args = [
      join(ROOT, 'bin/gradot.mjs'),
      'ot',
      MODEL,
      '--method',
      todo.join(','),
      '--keep',
      String(c.keep),
      '--task',
      c.task,
      '--seed',
      String(c.seed),
      '--adapters',
      g.adapters,
      '--limit-test',
      String(g.limitTest),
      ...(haveFullFT ? [] : ['--full-ft']),
      '--out',
      work,
      '--threads',
      threads,
    ];
    console.error(`[grid] ${new Date().toISOString()} ${tag}: ${todo.join(',')}${haveFullFT ? '' : ' +full-ft'}`);
    if (process.argv.includes('--dry')) {
      rmSync(lock, { force: true });
      continue;
    }
    const r = spawnSync('node', args, { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
    const n = harvest(c, work);
    rmSync(lock, { force: true });
    console.error(`[grid] ${new Date().toISOString()} ${tag}: exit ${r.status ?? r.signal}, ${n} report(s) written`);
    if (r.signal) process.exit(1); // killed: stop here, resume later
  }
}

// ---- table

const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sd = (xs) => (xs.length > 1 ? Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1)) : NaN);
const pct = (x) => (100 * x).toFixed(1);
const signed = (x) => (x > 0 ? '+' : '') + pct(x);

function claim(r, id, metric) {
  return (r.claims ?? []).find((c) => c.id === id && c.metric === metric);
}

/** One value over seeds: "v ± se: verdict" for one seed, "mean ± sd (yes in k of n)" for several. */
function cell(rs, id, metric = 'acc') {
  const cs = rs.map((r) => claim(r, id, metric)).filter(Boolean);
  if (cs.length === 0) return '—';
  if (cs.length === 1) return `${signed(cs[0].value)} ± ${pct(cs[0].stderr)}: ${cs[0].verdict}`;
  const v = cs.map((c) => c.value);
  return `${signed(mean(v))} ± ${pct(sd(v))} (yes in ${cs.filter((c) => c.verdict === 'yes').length} of ${cs.length})`;
}

function level(rs, key, norm = false) {
  const v = rs.map((r) => (norm ? r.details?.[key]?.accNorm : r[key])).filter((x) => typeof x === 'number');
  if (v.length === 0) return '—';
  return v.length === 1 ? pct(v[0]) : `${pct(mean(v))} ± ${pct(sd(v))}`;
}

function table() {
  if (!existsSync(OUT)) return console.log('(no grid results yet)');
  const rows = readdirSync(OUT)
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(readFileSync(join(OUT, f), 'utf8')));
  const groups = new Map();
  for (const r of rows) {
    const method = r.failed ? r.method : (r.variant ?? r.method);
    const key = `${r.task}|${r.keep}|${method}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const order = (k) => {
    const [t, keep, m] = k.split('|');
    return [GRID.tasks.indexOf(t), -Number(keep), GRID.methods.indexOf(m)];
  };
  const keys = [...groups.keys()].sort((a, b) => {
    const x = order(a),
      y = order(b);
    return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
  });
  // acc is the headline; acc_norm beside the zero-shot numbers, where a model that knows a task but prefers
  // one answer's wording (genre-short-mc) shows what it knows.
  console.log(
    '| task | keep | method | seeds | ratio | Full ZS acc / acc_norm | Emulator ZS acc / acc_norm | hides (acc) | hides (acc_norm) | Emulator FT | Plug-in | Plug-in − Full ZS | Δ = Plug-in − Emulator FT | Full FT |',
  );
  console.log('| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const k of keys) {
    const [task, keep, method] = k.split('|');
    const rs = groups.get(k);
    if (rs[0].failed) {
      console.log(`| ${task} | ${keep} | ${method} | — | not run: ${rs[0].failed.replace(/\|/g, '/')} ||||||||||`);
      continue;
    }
    const seeds = rs.map((r) => r.tuneOptions?.seed ?? 0).join(',');
    const ratio = `${mean(rs.map((r) => r.compressionRatio)).toFixed(2)}×`;
    console.log(
      `| ${task} | ${keep} | ${method} | ${seeds} | ${ratio} | ${level(rs, 'fullZS')} / ${level(rs, 'fullZS', true)} | ${level(rs, 'emulatorZS')} / ${level(rs, 'emulatorZS', true)} | ${cell(rs, 'emulatorHides')} | ${cell(rs, 'emulatorHides', 'acc_norm')} | ${level(rs, 'emulatorFT')} | ${level(rs, 'plugIn')} | ${cell(rs, 'plugInBeatsFullZS')} | ${cell(rs, 'deltaPositive')} | ${level(rs, 'fullFT')} |`,
    );
  }
}

// Only as a script (the test imports the helpers).
const main = process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (main && process.argv[2] === 'run') run();
else if (main && process.argv[2] === 'table') table();
else if (main)
  console.error('usage: node tools/ot-grid.mjs run|table [--threads N] [--limit-test N] [--tasks …] [--seeds …] [--keeps …] [--dry]');

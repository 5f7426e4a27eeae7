import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../main';
import { randomTestModel, smallSpec, writeHFFolder } from '../../model/random-model';
import { REPO_ROOT } from './ot-shared';
import { buildEmulator } from '../../ot/emulator/package';
import { CpuBackend } from '../../engine/cpu/backend';
import { captureIO } from '../test-io';
import { TUNE_DEFAULTS } from '../../jobs/tune-defaults';
import { MLP_READINGS } from '../../ot/emulator/compress';
import { GLOBAL_RANK_READING } from '../../ot/emulator/budget';

let dir = '';
let model = '';
let task = '';
const jsonl = (rows: unknown[]): string => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
const words = ['red', 'blue', 'green', 'small', 'large', 'warm', 'cold', 'fast'];
const mcRows = (n: number, off: number): unknown[] =>
  Array.from({ length: n }, (_, i) => {
    const k = (i + off) % words.length;
    return {
      context: `Word: ${words[k]}\nSame:`,
      choices: [` ${words[k]}`, ` ${words[(k + 3) % words.length]}`],
      label: (i + off) % 2 === 0 ? 0 : 1,
    };
  });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gradot-ot-'));
  model = join(dir, 'model');
  const spec = smallSpec('llama', { numLayers: 4, hiddenSize: 16, numHeads: 2, vocabSize: 4096, maxPositions: 64 });
  await writeHFFolder(model, spec, randomTestModel(spec, 3));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) await copyFile(join(REPO_ROOT, 'public/models/demo', f), join(model, f));
  task = join(dir, 'task');
  await mkdir(task);
  await writeFile(join(task, 'train.jsonl'), jsonl(mcRows(12, 0)));
  await writeFile(join(task, 'valid.jsonl'), jsonl(mcRows(4, 5)));
  await writeFile(join(task, 'test.jsonl'), jsonl(mcRows(6, 1)));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('gradot ot', () => {
  it('runs the protocol for two methods and writes JSON + a Markdown table', async () => {
    const c = captureIO();
    const out = join(dir, 'ot-out');
    const code = await main(
      [
        'ot',
        model,
        '--method',
        'none,drop',
        '--keep',
        '0.5',
        '--task',
        task,
        '--adapters',
        '1:1',
        '--steps',
        '2',
        '--batch',
        '4',
        '--lr',
        '1e-3',
        '--full-ft',
        '--out',
        out,
        '--json',
      ],
      c.io,
      dir,
    );
    expect(c.out.length).toBe(1);
    const r = JSON.parse(c.out[0]!);
    expect(code, c.out[0]).toBe(0);
    expect(r.runs.map((x: { method: string }) => x.method)).toEqual(['none', 'drop']);
    expect(r.runs[0].delta).toBe(0);
    expect(r.runs[0].fullZS).toBe(r.runs[1].fullZS);
    expect(r.runs[1].compressionRatio).toBe(2);
    expect(r.runs[0].fullFT).not.toBeNull();
    const md = await readFile(join(out, 'report.md'), 'utf8');
    expect(md).toContain('| none | 0.5 |');
    expect(md).toContain('| drop | 0.5 | 2.00× |');
    expect(existsSync(join(out, 'report-drop-0.5.json'))).toBe(true);
    // The privacy side: 'none' keeps the model, so its emulator hides nothing (0 ± 0 → "no").
    expect(r.runs[0].privacyGap).toBe(0);
    expect(r.runs[0].privacyGapStderr).toBe(0);
    expect(r.runs[0].checks.emulatorHides).toBe(false);
    // The verdicts in words on the headline metric (acc): Δ is exactly 0 ± 0 for 'none' → "no".
    expect(r.runs[0].verdicts).toEqual({
      deltaPositive: 'no',
      plugInBeatsFullZS: r.runs[0].verdicts.plugInBeatsFullZS,
      emulatorHides: 'no',
    });
    expect(['yes', 'no', 'inside noise']).toContain(r.runs[0].verdicts.plugInBeatsFullZS);
    expect(md).toContain('| none | privacy: emulator hides (Full ZS − Emulator ZS > 0) | 0.0 ± 0.0: no |');
  });

  it('--seeds repeats each method per seed: one report per run, rows labelled, a summary over seeds', async () => {
    const c = captureIO();
    const out = join(dir, 'ot-seeds');
    const code = await main(
      [
        'ot',
        model,
        '--method',
        'none,drop',
        '--keep',
        '0.5',
        '--task',
        task,
        '--adapters',
        '1:1',
        '--steps',
        '2',
        '--batch',
        '4',
        '--lr',
        '1e-2',
        '--seeds',
        '3,4',
        '--out',
        out,
        '--json',
      ],
      c.io,
      dir,
    );
    expect(code, c.out[0]).toBe(0);
    const r = JSON.parse(c.out[0]!);
    expect(r.runs.map((x: { method: string; seed: number }) => `${x.method}/${x.seed}`)).toEqual(['none/3', 'none/4', 'drop/3', 'drop/4']);
    // Different seeds shuffle the training data differently, so the tuning runs differ.
    const rep = JSON.parse(await readFile(join(out, 'report-drop-0.5-seed4.json'), 'utf8'));
    const rep3 = JSON.parse(await readFile(join(out, 'report-drop-0.5-seed3.json'), 'utf8'));
    expect([rep3.tuneOptions.seed, rep.tuneOptions.seed]).toEqual([3, 4]);
    expect(rep.tune.trainLoss).not.toBe(rep3.tune.trainLoss);
    const md = await readFile(join(out, 'report.md'), 'utf8');
    expect(md).toContain('| drop s3 | 0.5 |');
    expect(md).toMatch(/\| drop \| 3, 4 \| [^|]+ \| [^|]+ \| [^|]+ \| \d of 2 \|/);
    expect(await main(['ot', model, '--method', 'none', '--keep', '0.5', '--task', task, '--seeds', '1,x'], captureIO().io, dir)).not.toBe(
      0,
    );
    expect(
      await main(['ot', model, '--method', 'none', '--keep', '0.5', '--task', task, '--seeds', '1', '--seed', '2'], captureIO().io, dir),
    ).not.toBe(0);
  });

  it("a method that cannot reach --keep fails the command but keeps the other methods' finished reports", async () => {
    const c = captureIO();
    const out = join(dir, 'ot-fail');
    // prune leaves attention dense, so 5% of the middle is below its floor; drop still runs.
    const code = await main(
      [
        'ot',
        model,
        '--method',
        'prune,drop',
        '--keep',
        '0.05',
        '--task',
        task,
        '--adapters',
        '1:1',
        '--steps',
        '1',
        '--batch',
        '4',
        '--out',
        out,
        '--json',
      ],
      c.io,
      dir,
    );
    expect(code).not.toBe(0);
    const r = JSON.parse(c.out[0]!);
    expect(r.ok).toBe(false);
    expect(r.error.message).toMatch(/1 of 2 runs failed — prune: prune cannot reach keep=0\.05.*finished: drop/);
    expect(existsSync(join(out, 'report-drop-0.05.json'))).toBe(true);
    expect(await readFile(join(out, 'report.md'), 'utf8')).toMatch(
      /\| drop \| 0\.05 \|[\s\S]*Not run: prune at keep 0\.05: prune cannot reach/,
    );
    const failed = JSON.parse(await readFile(join(out, 'failed.json'), 'utf8'));
    expect(failed).toEqual([expect.objectContaining({ method: 'prune', keep: 0.05 })]);
  });
});

describe('gradot ot --method gradot', () => {
  it('builds the emulator with a support pass (task train text by default) and reports it', async () => {
    const c = captureIO();
    expect(
      await main(
        [
          'ot',
          model,
          '--method',
          'gradot',
          '--keep',
          '0.5',
          '--task',
          task,
          '--adapters',
          '1:1',
          '--steps',
          '1',
          '--batch',
          '4',
          '--support-len',
          '16',
          '--lambda-mode',
          'balanced',
          '--out',
          join(dir, 'ot-gradot'),
          '--json',
        ],
        c.io,
        dir,
      ),
      c.out[0],
    ).toBe(0);
    const r = JSON.parse(c.out[0]!);
    expect(r).toMatchObject({ method: 'gradot', keep: 0.5, support: 'task/train.jsonl (default)' });
    expect(r.compressionRatio).toBeGreaterThan(1.5);
    const rep = JSON.parse(await readFile(join(dir, 'ot-gradot', 'report-gradot-0.5.json'), 'utf8'));
    expect(rep.compressRecord.emulator.readings.lambda).toBe('lambda/balanced-per-matrix-sum-ratio/v1');
    expect(
      await main(['ot', model, '--method', 'gradot', '--keep', '0.5', '--task', task, '--lambda-mode', 'scaled'], captureIO().io, dir),
    ).not.toBe(0);
  });
});

describe('gradot ot --method gradot-paper', () => {
  it("builds gradot with the paper's layout (SCP MLP channels, uniform ranks) beside plain gradot and names it in the report", async () => {
    const c = captureIO();
    const out = join(dir, 'ot-paper');
    const args = ['ot', model, '--method', 'gradot,gradot-paper', '--keep', '0.5', '--task', task, '--adapters', '1:1'];
    expect(
      await main([...args, '--steps', '1', '--batch', '4', '--support-len', '16', '--out', out, '--json'], c.io, dir),
      c.err.join('\n'),
    ).toBe(0);
    const r = JSON.parse(c.out[0]!);
    expect(r.runs.map((x: { method: string }) => x.method)).toEqual(['gradot', 'gradot-paper']);
    const paper = JSON.parse(await readFile(join(out, 'report-gradot-paper-0.5.json'), 'utf8'));
    expect(paper).toMatchObject({ method: 'gradot', variant: 'gradot-paper' });
    // No --lr: the full-block default budget, the studio's too (src/jobs/tune-defaults.ts).
    expect(paper.tuneOptions.lr).toBe(TUNE_DEFAULTS.full.lr);
    const readings = paper.compressRecord.emulator.readings;
    expect(readings.mlp).toBe(MLP_READINGS.scp);
    expect(readings.rankAllocation).toBeUndefined(); // uniform: no global-allocation reading
    const plain = JSON.parse(await readFile(join(out, 'report-gradot-0.5.json'), 'utf8'));
    expect(plain.variant).toBeUndefined();
    expect(plain.compressRecord.emulator.readings).toMatchObject({ mlp: MLP_READINGS.drd, rankAllocation: GLOBAL_RANK_READING });
    // The method list of report.md names the variant.
    expect(await readFile(join(out, 'report.md'), 'utf8')).toMatch(/^\| gradot-paper \| 0\.5 \|/m);
    const bad = captureIO();
    expect(await main(['ot', model, '--method', 'gradot-pape', '--keep', '0.5', '--task', task], bad.io, dir)).not.toBe(0);
    expect(bad.err.join('\n')).toMatch(/unknown method 'gradot-pape' \(.*gradot-paper\)/);
  });
});

describe('gradot tune / eval / plug', () => {
  it('tunes into a folder, evaluates with the adapter, plugs it into the model', async () => {
    const out = join(dir, 'adapter');
    let c = captureIO();
    expect(
      await main(
        [
          'tune',
          model,
          '--train',
          join(task, 'train.jsonl'),
          '--valid',
          join(task, 'valid.jsonl'),
          '--adapters',
          '1:1',
          '--steps',
          '3',
          '--batch',
          '4',
          '--lr',
          '1e-2',
          '--lora',
          '2',
          '--lora-targets',
          'q,v,down',
          '--out',
          out,
          '--json',
        ],
        c.io,
        dir,
      ),
    ).toBe(0);
    const t = JSON.parse(c.out[0]!);
    expect(t).toMatchObject({ ok: true, method: 'lora', steps: 3 });
    for (const f of ['adapter.json', 'adapter.safetensors', 'adapter_config.json', 'adapter_model.safetensors', 'tune.json'])
      expect(existsSync(join(out, f)), f).toBe(true);
    // Re-running the finished command does not train again.
    c = captureIO();
    expect(
      await main(
        [
          'tune',
          model,
          '--train',
          join(task, 'train.jsonl'),
          '--valid',
          join(task, 'valid.jsonl'),
          '--adapters',
          '1:1',
          '--steps',
          '3',
          '--batch',
          '4',
          '--lr',
          '1e-2',
          '--lora',
          '2',
          '--lora-targets',
          'q,v,down',
          '--out',
          out,
          '--json',
        ],
        c.io,
        dir,
      ),
    ).toBe(0);
    expect(JSON.parse(c.out[0]!).resumedFrom).toBe('done');

    c = captureIO();
    expect(await main(['eval', model, '--adapter', out, '--task', join(task, 'test.jsonl'), '--json'], c.io, dir)).toBe(0);
    const withAdapter = JSON.parse(c.out[0]!);
    expect(withAdapter.kind).toBe('mc');
    const plugged = join(dir, 'plugged');
    c = captureIO();
    expect(await main(['plug', model, '--adapter', out, '--out', plugged, '--json'], c.io, dir)).toBe(0);
    expect(existsSync(join(plugged, 'config.json')) && existsSync(join(plugged, 'tokenizer.json'))).toBe(true);
    c = captureIO();
    expect(await main(['eval', plugged, '--task', task, '--json'], c.io, dir)).toBe(0);
    const p = JSON.parse(c.out[0]!);
    expect(p.acc).toBe(withAdapter.acc);
    expect(p.accNorm).toBe(withAdapter.accNorm);

    // The same evaluation through onnxruntime (the adapter applied, then exported to ONNX) scores the same.
    c = captureIO();
    expect(await main(['eval', model, '--adapter', out, '--task', join(task, 'test.jsonl'), '--runtime', 'ort', '--json'], c.io, dir)).toBe(
      0,
    );
    const viaOrt = JSON.parse(c.out[0]!);
    expect(viaOrt.runtime).toBe('ort');
    expect(viaOrt.n).toBe(withAdapter.n);
    expect(viaOrt.acc).toBe(withAdapter.acc);
    expect(viaOrt.accNorm).toBe(withAdapter.accNorm);
    c = captureIO();
    expect(await main(['eval', model, '--task', join(task, 'test.jsonl'), '--runtime', 'tpu', '--json'], c.io, dir)).toBe(2);
  });

  it('tunes on an emulator package (tokenizer from the base model) and the adapter plugs into the full model', async () => {
    const spec = smallSpec('llama', { numLayers: 4, hiddenSize: 16, numHeads: 2, vocabSize: 4096, maxPositions: 64 });
    const { files } = await buildEmulator(spec, randomTestModel(spec, 3), {
      method: 'drop',
      keep: 0.5,
      split: { bottom: 1, top: 1 },
      backend: new CpuBackend(),
      support: [],
      modelId: 'tiny',
    });
    const pkg = join(dir, 'pkg');
    await mkdir(pkg, { recursive: true });
    for (const [k, v] of files) await writeFile(join(pkg, k), v);
    const out = join(dir, 'adapter-emu');
    let c = captureIO();
    expect(
      await main(
        [
          'tune',
          pkg,
          '--tokenizer',
          model,
          '--train',
          join(task, 'train.jsonl'),
          '--steps',
          '2',
          '--batch',
          '4',
          '--lr',
          '1e-2',
          '--out',
          out,
          '--json',
        ],
        c.io,
        dir,
      ),
      c.out[0],
    ).toBe(0);
    const meta = JSON.parse(await readFile(join(out, 'adapter.json'), 'utf8'));
    expect(meta).toMatchObject({
      method: 'adapter',
      split: { bottom: 1, top: 1 },
      blocks: [0, 3],
      baseModel: { modelId: 'tiny', numLayers: 4 },
    });
    c = captureIO();
    expect(await main(['eval', pkg, '--tokenizer', model, '--adapter', out, '--task', task, '--json'], c.io, dir)).toBe(0);
    c = captureIO();
    expect(await main(['plug', model, '--adapter', out, '--out', join(dir, 'plugged-emu'), '--json'], c.io, dir)).toBe(0);
    expect(JSON.parse(c.out[0]!).blocks).toEqual([0, 3]);
  });

  const bad: [string, string | Uint8Array, RegExp][] = [
    ['empty.jsonl', '', /empty\.jsonl: file is empty/],
    ['notjson.jsonl', '{"prompt": "a", "answer": " b"}\n{not json}\n', /notjson\.jsonl line 2/],
    ['missing.jsonl', '{"prompt": "a", "answer": " b"}\n{"prompt": "c"}\n', /missing\.jsonl line 2: missing field "answer"/],
    [
      'latin1.jsonl',
      new Uint8Array([
        ...new TextEncoder().encode('{"prompt": "a", "answer": " b"}\n{"prompt": "caf'),
        0xe9,
        ...new TextEncoder().encode('", "answer": " x"}\n'),
      ]),
      /latin1\.jsonl line 2/,
    ],
    [
      'long.jsonl',
      `{"prompt": "a", "answer": " b"}\n{"prompt": "q", "answer": "${' word'.repeat(200)}"}\n`,
      /long\.jsonl line 2: .*more than the context/,
    ],
  ];
  for (const [name, content, msg] of bad) {
    it(`bad data (${name}): clear error with file and line, nothing written`, async () => {
      const f = join(dir, name);
      await writeFile(f, content);
      const out = join(dir, `out-${name}`);
      const c = captureIO();
      expect(await main(['tune', model, '--train', f, '--adapters', '1:1', '--steps', '1', '--out', out, '--json'], c.io, dir)).toBe(1);
      const r = JSON.parse(c.out[0]!);
      expect(r.ok).toBe(false);
      expect(r.error.name).toBe('DatasetError');
      expect(r.error.message).toMatch(msg);
      expect(existsSync(out)).toBe(false);
      const e = captureIO();
      expect(await main(['eval', model, '--task', f, '--json'], e.io, dir)).toBe(1);
      expect(JSON.parse(e.out[0]!).error.message).toMatch(msg);
    });
  }
});

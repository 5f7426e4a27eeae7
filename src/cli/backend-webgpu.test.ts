/**
 * `--backend webgpu` end to end: the CLI in Node through Dawn (the `webgpu` package) runs a GradOT compress and
 * a few tuning steps on a tiny model, and the results match the CPU backend's within stated tolerances.
 *
 * The WebGPU runs are child processes: the Vulkan loader reads LD_LIBRARY_PATH / VK_ICD_FILENAMES when the
 * process starts, so on a machine without a GPU driver the child is started through tools/gpu/swiftshader-env.sh
 * (Chromium's software Vulkan driver; a correctness vehicle, ~20 s of shader compilation per command here).
 * GRADOT_TEST_VULKAN=native runs the child on the machine's own driver instead (a real GPU). When Dawn cannot
 * create a device at all, the test is skipped with the reason printed.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomTestModel, smallSpec, writeHFFolder } from '../model/random-model';
import { parseSafetensors } from '../model/safetensors';
import { REPO_ROOT } from './commands/ot-shared';
import { main } from './main';
import { captureIO } from './test-io';

/** Relative tolerances (f32 on both sides; the GPU sums in another order). Measured: see the printed lines. */
const TOL = { loss: 1e-4, shift: 2e-3, weights: 1e-4, adapter: 5e-4 };

let dir = '';
let model = '';
const words = ['red', 'blue', 'green', 'small', 'large', 'warm', 'cold', 'fast', 'the', 'house', 'river', 'stone'];
const rows = (n: number, off: number): string =>
  Array.from({ length: n }, (_, i) =>
    JSON.stringify({
      text: Array.from({ length: 14 }, (_, k) => words[(i * 7 + k * 5 + off) % words.length]).join(' ') + '.',
    }),
  ).join('\n') + '\n';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gradot-webgpu-cli-'));
  model = join(dir, 'model');
  const spec = smallSpec('llama', { numLayers: 4, hiddenSize: 32, numHeads: 2, vocabSize: 4096, maxPositions: 64 });
  await writeHFFolder(model, spec, randomTestModel(spec, 5));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) await copyFile(join(REPO_ROOT, 'public/models/demo', f), join(model, f));
  await mkdir(join(dir, 'data'));
  await writeFile(join(dir, 'data', 'support.jsonl'), rows(24, 0));
  await writeFile(join(dir, 'data', 'train.jsonl'), rows(12, 3));
  await writeFile(join(dir, 'data', 'valid.jsonl'), rows(4, 8));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs `gradot ARGS --json` in a child process with the Vulkan setup above; resolves its JSON line. */
function gradotChild(args: string[]): Promise<{ json: Record<string, unknown>; stderr: string }> {
  const swiftshader = join(REPO_ROOT, 'tools/gpu/swiftshader-env.sh');
  const useSwiftshader =
    process.env.GRADOT_TEST_VULKAN !== 'native' && process.platform === 'linux' && existsSync('/usr/lib/chromium/vk_swiftshader_icd.json');
  const cmd = [...(useSwiftshader ? [swiftshader] : []), process.execPath, join(REPO_ROOT, 'bin/gradot.mjs'), ...args, '--json'];
  return new Promise((res, rej) => {
    const p = spawn(cmd[0]!, cmd.slice(1), { cwd: dir, env: { ...process.env, GRADOT_BACKEND: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', rej);
    p.on('close', () => {
      const line = out.trim().split('\n').pop() ?? '';
      try {
        res({ json: JSON.parse(line) as Record<string, unknown>, stderr: err });
      } catch {
        rej(new Error(`gradot ${args[0]}: no JSON on stdout\n${out}\n${err}`));
      }
    });
  });
}

async function gradotHere(args: string[]): Promise<Record<string, unknown>> {
  const c = captureIO();
  const code = await main([...args, '--json'], c.io, dir);
  expect(code, c.out.join('\n') + c.err.join('\n')).toBe(0);
  return JSON.parse(c.out[0]!) as Record<string, unknown>;
}

const rel = (a: number, b: number): number => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);

function normRel(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let n = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i]! - b[i]!) ** 2;
    n += b[i]! ** 2;
  }
  return Math.sqrt(d / Math.max(n, 1e-30));
}

/** Largest normRel over the tensors of two safetensors files (same names and shapes required). */
async function maxWeightDiff(fileA: string, fileB: string): Promise<{ max: number; worst: string }> {
  const a = parseSafetensors(new Uint8Array(await readFile(fileA))).tensors;
  const b = parseSafetensors(new Uint8Array(await readFile(fileB))).tensors;
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
  let max = 0;
  let worst = '';
  for (const [name, t] of a) {
    const u = b.get(name)!;
    expect(t.shape, name).toEqual(u.shape);
    const r = normRel(t.data, u.data);
    if (r > max) [max, worst] = [r, name];
  }
  return { max, worst };
}

describe('gradot --backend webgpu (Dawn in Node) against --backend cpu', () => {
  it('compress (gradot) and 3 tuning steps match the CPU backend', async (ctx) => {
    const t0 = performance.now();
    const compressArgs = [
      'compress',
      model,
      '--method',
      'gradot',
      '--keep',
      '0.5',
      '--adapters',
      '1:1',
      '--support',
      'data/support.jsonl',
      '--seq',
      '16',
      '--batch',
      '2',
      '--support-batches',
      '2',
      '--heldout-batches',
      '1',
    ];
    const tuneArgs = [
      'tune',
      'emu-cpu',
      '--train',
      'data/train.jsonl',
      '--valid',
      'data/valid.jsonl',
      '--steps',
      '3',
      '--batch',
      '2',
      '--context',
      '16',
      '--lr',
      '1e-3',
    ];
    // The CPU package first (a few seconds); then the WebGPU children (compress, tuning on that package, an
    // 'auto' evaluation) run side by side, most of their time being SwiftShader compiling shaders, while the
    // CPU tuning runs in this process.
    const cpu = await gradotHere([...compressArgs, '--out', 'emu-cpu', '--backend', 'cpu']);
    const gpuRun = gradotChild([...compressArgs, '--out', 'emu-gpu', '--backend', 'webgpu']);
    const gpuTuneRun = gradotChild([...tuneArgs, '--out', 'tune-gpu', '--backend', 'webgpu']);
    const autoRun = gradotChild(['eval', model, '--task', 'data/valid.jsonl', '--context', '16', '--backend', 'auto']);
    const cpuTune = await gradotHere([...tuneArgs, '--out', 'tune-cpu', '--backend', 'cpu']);
    const [{ json: gpu, stderr }, { json: gpuTune, stderr: tuneErr }, { json: auto, stderr: autoErr }] = await Promise.all([
      gpuRun,
      gpuTuneRun,
      autoRun,
    ]);
    if (gpu.ok === false) {
      const e = gpu.error as { name: string; message: string };
      if (e.name === 'WebGpuUnavailableError' || e.name === 'DawnUnavailableError') {
        console.warn(`[backend-webgpu] skipped: Dawn cannot create a WebGPU device here: ${e.message}`);
        ctx.skip();
      }
      throw new Error(`gradot compress --backend webgpu failed: ${JSON.stringify(e)}\n${stderr}`);
    }
    const backendLine = stderr.split('\n').find((l) => l.startsWith('backend: '));
    expect(backendLine).toMatch(/^backend: webgpu \(Dawn, .+, f16: (yes|no), subgroups: (yes|no)\)$/);
    expect(gpu.backend).toMatchObject({ kind: 'webgpu', gpu: { via: 'Dawn' } });
    if ((gpu.backend as { gpu: { software: boolean } }).gpu.software) expect(stderr).toMatch(/warning: .* is a software adapter/);
    expect(cpu.backend).toMatchObject({ kind: 'cpu' });
    // 'auto' takes a hardware adapter and refuses a software one (the CPU is faster), saying so.
    expect(auto.ok, autoErr).toBe(true);
    if ((gpu.backend as { gpu: { software: boolean } }).gpu.software) {
      expect(auto.backend).toMatchObject({ kind: 'cpu', why: expect.stringMatching(/only a software WebGPU adapter/) });
      expect(autoErr).toMatch(/^backend: cpu \(\d+ threads?.*\) — only a software WebGPU adapter/m);
    } else expect(auto.backend).toMatchObject({ kind: 'webgpu' });

    // Same compression decisions (ranks, widths, parameter counts) and the same losses / held-out shift.
    expect(gpu.layers).toEqual(cpu.layers);
    expect(gpu.params).toEqual(cpu.params);
    type Report = {
      supportLoss: { full: number; emulator: number };
      heldout: { gradShift: number; fullLoss: number; emulatorLoss: number };
    };
    const [g, c] = [gpu as unknown as Report, cpu as unknown as Report];
    const diffs = {
      supportFull: rel(g.supportLoss.full, c.supportLoss.full),
      supportEmu: rel(g.supportLoss.emulator, c.supportLoss.emulator),
      heldoutFull: rel(g.heldout.fullLoss, c.heldout.fullLoss),
      heldoutEmu: rel(g.heldout.emulatorLoss, c.heldout.emulatorLoss),
      shift: rel(g.heldout.gradShift, c.heldout.gradShift),
    };
    const pkg = await maxWeightDiff(join(dir, 'emu-gpu', 'emulator.safetensors'), join(dir, 'emu-cpu', 'emulator.safetensors'));
    console.log(
      `[backend-webgpu] compress: ${backendLine}; rel. differences ${JSON.stringify(diffs)}; package weights max normRel ` +
        `${pkg.max.toExponential(2)} (${pkg.worst})`,
    );
    for (const k of ['supportFull', 'supportEmu', 'heldoutFull', 'heldoutEmu'] as const) expect(diffs[k], k).toBeLessThan(TOL.loss);
    expect(diffs.shift).toBeLessThan(TOL.shift);
    expect(pkg.max).toBeLessThan(TOL.weights);

    // Three tuning steps on the same (CPU-built) package: losses and the tuned adapter weights agree.
    expect(gpuTune.ok, tuneErr).toBe(true);
    expect(gpuTune.backend).toMatchObject({ kind: 'webgpu' });
    expect(gpuTune.steps).toBe(3);
    const tuneDiffs = {
      trainLoss: rel(gpuTune.trainLoss as number, cpuTune.trainLoss as number),
      bestValLoss: rel(gpuTune.bestValLoss as number, cpuTune.bestValLoss as number),
    };
    const adapter = await maxWeightDiff(join(dir, 'tune-gpu', 'adapter.safetensors'), join(dir, 'tune-cpu', 'adapter.safetensors'));
    console.log(
      `[backend-webgpu] tune: rel. differences ${JSON.stringify(tuneDiffs)}; adapter weights max normRel ${adapter.max.toExponential(2)} ` +
        `(${adapter.worst}); ${((performance.now() - t0) / 1000).toFixed(1)} s in all`,
    );
    expect(tuneDiffs.trainLoss).toBeLessThan(TOL.loss);
    expect(tuneDiffs.bestValLoss).toBeLessThan(TOL.loss);
    expect(adapter.max).toBeLessThan(TOL.adapter);
  }, 300_000);
});

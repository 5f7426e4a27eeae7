import { describe, expect, it } from 'vitest';
import { compressModel } from '../emulator/compress';
import { runProtocol, type CompressFn } from './protocol';
import { markdownTable } from './report';
import { synthExamples, tinyModel } from './test-helpers';

const split = { bottom: 1, top: 1 };

describe('runProtocol', () => {
  it('none emulator: Emulator ZS = Full ZS, Emulator FT = Plug-in (Δ = 0), ratio 1', async () => {
    const full = tinyModel('llama', 4);
    const none: CompressFn = async (m, req) => {
      const r = compressModel(m.spec, m.weights, { method: 'none', keep: 1, split: req.split });
      return { spec: r.spec, weights: r.weights };
    };
    const train = synthExamples(16, 1);
    const test = { kind: 'sft' as const, file: 'test.jsonl', examples: synthExamples(6, 2) };
    const phases: string[] = [];
    const r = await runProtocol(
      { ...full, modelId: 'tiny' },
      {
        method: 'none',
        keep: 1,
        split,
        compress: none,
        task: { name: 'synth', train, valid: synthExamples(4, 3), test },
        tune: { lr: 1e-2, batchSize: 4, epochs: 2, seed: 1 },
        fullFT: true,
        onProgress: (p) => {
          if (!phases.includes(p.phase)) phases.push(p.phase);
        },
      },
    );
    expect(r.metric).toBe('loss');
    expect(r.emulatorZS).toBe(r.fullZS);
    expect(r.emulatorFT).toBe(r.plugIn);
    expect(r.delta).toBe(0);
    expect(r.compressionRatio).toBe(1);
    expect(r.plugIn).toBeLessThan(r.fullZS);
    expect(r.fullFT).not.toBeNull();
    expect(phases).toEqual(['full-zs', 'compress', 'emulator-zs', 'tune', 'emulator-ft', 'plug-in', 'full-ft-tune', 'full-ft']);
    const md = markdownTable([r]);
    expect(md).toContain('| none | 1 | 1.00× |');
    expect(JSON.parse(JSON.stringify(r)).format).toBe('gradot-ot-report');
  });

  it('a drop emulator is weaker than the full model and reports its ratio', async () => {
    const full = tinyModel('gpt2', 6);
    const drop: CompressFn = async (m, req) => {
      const r = compressModel(m.spec, m.weights, { method: 'drop', keep: 0.5, split: req.split });
      return { spec: r.spec, weights: r.weights };
    };
    const r = await runProtocol(
      { ...full, modelId: 'tiny' },
      {
        method: 'drop',
        keep: 0.5,
        split,
        compress: drop,
        task: { name: 'synth', train: synthExamples(12, 1), valid: [], test: { kind: 'sft', file: 't', examples: synthExamples(4, 2) } },
        tune: { lr: 1e-2, batchSize: 4, maxSteps: 3, method: 'lora', lora: { r: 2, alpha: 4, targets: ['o', 'up'] } },
      },
    );
    expect(r.compressionRatio).toBeCloseTo(2, 5);
    expect(r.emulatorZS).not.toBe(r.fullZS);
    expect(r.fullFT).toBeNull();
    expect(r.tune.method).toBe('lora');
  });
});

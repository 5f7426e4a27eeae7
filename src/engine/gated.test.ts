// ops.gatedActivation: the composed path (backends without the fused op) and the fused path (here a CPU
// backend that offers the optional methods, computed the way the WebGPU kernel does) give the same
// values and gradients, and both pass a finite-difference check.
import { describe, expect, it } from 'vitest';
import type { Activation, Storage } from './backend';
import { CpuBackend } from './cpu/backend';
import * as ops from './ops';
import { Tensor } from './tensor';
import { gradCheck } from './testing';

class FusedCpu extends CpuBackend {
  fusedCalls = 0;
  override gatedActivation(gate: Storage, up: Storage, kind: Activation): Storage {
    this.fusedCalls++;
    return this.mul(this.activation(gate, kind), up);
  }
  override gatedActivationBackward(dy: Storage, gate: Storage, up: Storage, kind: Activation): { dgate: Storage; dup: Storage } {
    this.fusedCalls++;
    return { dgate: this.activationBackward(this.mul(dy, up), gate, kind), dup: this.mul(dy, this.activation(gate, kind)) };
  }
}

describe('ops.gatedActivation', () => {
  for (const kind of ['silu', 'gelu_tanh'] as const) {
    it(`${kind}: composed and fused paths pass finite differences`, () => {
      const fused = new FusedCpu({ dtype: 'f64' });
      // The CPU backend offers the fused op itself: hide it to exercise ops' composed path.
      const composed = Object.assign(new CpuBackend({ dtype: 'f64' }), { gatedActivation: undefined, gatedActivationBackward: undefined });
      for (const be of [composed, fused]) {
        const r = gradCheck(be, ([g, u]) => ops.gatedActivation(g!, u!, kind), [{ shape: [3, 5] }, { shape: [3, 5] }], 11);
        expect(r.checked).toBeGreaterThan(0);
        expect(r.maxRelErr).toBeLessThan(1e-6);
      }
      expect(fused.fusedCalls).toBeGreaterThanOrEqual(2);
    });
  }

  it('a gate without gradient gets none (and the fused backward frees what it does not return)', () => {
    const fused = new FusedCpu({ dtype: 'f64' });
    const r = gradCheck(fused, ([g, u]) => ops.gatedActivation(g!, u!, 'silu'), [{ shape: [4], noGrad: true }, { shape: [4] }], 3);
    expect(r.checked).toBeGreaterThan(0);
    expect(r.maxRelErr).toBeLessThan(1e-6);
  });

  it('names the op on a shape mismatch', () => {
    const be = new CpuBackend({ dtype: 'f64' });
    const g = new Tensor(be, [2, 3], be.zeros(6));
    const u = new Tensor(be, [3, 2], be.zeros(6));
    expect(() => ops.gatedActivation(g, u, 'silu')).toThrow(/gatedActivation: shapes differ/);
  });
});

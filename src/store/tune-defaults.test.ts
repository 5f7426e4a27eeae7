import { describe, expect, it } from 'vitest';
import { TUNE_DEFAULTS } from '../jobs/tune-defaults';
import { DEFAULT_LR, useUi } from './ui';
import { useRuns } from './runs';

// The studio starts from the same budgets as `gradot tune` / `gradot ot` (chosen on the validation splits,
// docs/offsite-tuning.md "Default budgets"), so a run set up in either front end is the same run.
describe('studio tuning defaults', () => {
  it("the data owner's form and the researcher's grid start from TUNE_DEFAULTS", () => {
    expect(DEFAULT_LR).toEqual({ full: TUNE_DEFAULTS.full.lr, lora: TUNE_DEFAULTS.lora.lr });
    const t = useUi.getState().tune;
    expect(t).toMatchObject({
      mode: 'full',
      lr: TUNE_DEFAULTS.full.lr,
      epochs: TUNE_DEFAULTS.full.epochs,
      batchSize: TUNE_DEFAULTS.full.batch,
    });
    expect(t.loraRank).toBe(TUNE_DEFAULTS.lora.rank);
    const g = useRuns.getState().grid;
    expect(g).toMatchObject({
      lr: TUNE_DEFAULTS.full.lr,
      epochs: TUNE_DEFAULTS.full.epochs,
      batchSize: TUNE_DEFAULTS.full.batch,
      trainLimit: TUNE_DEFAULTS.full.examples,
    });
  });
});

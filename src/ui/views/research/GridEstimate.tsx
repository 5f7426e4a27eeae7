/**
 * The grid's time estimate, shown before it runs: this backend's speed on the open model (measured once
 * by the worker, StudioApi.calibrate) through the cost model of src/ui/grid-estimate.ts, with the task's
 * sizes read from the first part of its files. After a grid, the last grid's pace is shown beside it.
 */
import { type ReactNode, useEffect, useMemo, useState } from 'react';
import type { Calibration, InputFile, OTSetting } from '../../../jobs/studio-api';
import type { GridSettings } from '../../../store/runs';
import { useUi } from '../../../store/ui';
import { estimateGrid, sampleTask, tokensPerRow, type TaskSample } from '../../grid-estimate';
import { formatDuration } from '../../format';
import { studio } from '../../studio';

/** Enough of a task file to count its rows and choices (the whole file when smaller). */
const SAMPLE_BYTES = 256 * 1024;

function baseName(path: string): string {
  return path.split('/').pop()!.toLowerCase();
}

async function readSample(f: InputFile | undefined): Promise<TaskSample | null> {
  if (!f) return null;
  return sampleTask(await f.data.slice(0, SAMPLE_BYTES).text(), f.data.size);
}

export function GridEstimate({
  grid,
  settings,
  task,
  secPerSetting,
}: {
  grid: GridSettings;
  settings: OTSetting[];
  task: InputFile[];
  secPerSetting: number | null;
}) {
  const model = useUi((s) => s.model);
  const [cal, setCal] = useState<Calibration | null>(null);
  const [calError, setCalError] = useState<string | null>(null);
  // Sizes of the task they were read from: an estimate waits for the current task's.
  const [sizes, setSizes] = useState<{ of: InputFile[]; train: TaskSample | null; test: TaskSample | null }>({
    of: [],
    train: null,
    test: null,
  });

  useEffect(() => {
    if (!model) return;
    let alive = true;
    setCal(null);
    setCalError(null);
    // Once per model and seq len (the worker caches it): a couple of forward passes and one SVD.
    studio()
      .calibrate(grid.seqLen)
      .then(
        (c) => alive && setCal(c),
        (e: unknown) => alive && setCalError(e instanceof Error ? e.message : String(e)),
      );
    return () => {
      alive = false;
    };
  }, [model?.name, grid.seqLen]);

  useEffect(() => {
    let alive = true;
    const train = task.find((f) => baseName(f.path).includes('train'));
    const test = task.find((f) => baseName(f.path).includes('test'));
    void Promise.all([readSample(train), readSample(test)]).then(([a, b]) => alive && setSizes({ of: task, train: a, test: b }));
    return () => {
      alive = false;
    };
  }, [task]);

  const seeds = Math.max(1, grid.seeds.length);
  const est = useMemo(() => {
    // Without a task the token counts would be guesses: the grid cannot start without one anyway.
    if (!model || !cal || settings.length === 0 || task.length === 0 || sizes.of !== task) return null;
    const L = model.numLayers;
    const middle = model.layers.filter((l) => l.index >= grid.bottom && l.index < L - grid.top);
    // Matrices of a middle block: its 2-D weights (q k v o gate up down for LLaMA).
    const matricesPerBlock = (i: number) =>
      model.tensors.filter((t) => t.shape.length === 2 && new RegExp(`\\.${i}\\.`).test(t.name)).length;
    const pick = (limit: number, s: TaskSample | null) => (limit > 0 ? (s ? Math.min(limit, s.rows) : limit) : (s?.rows ?? 0));
    if (!sizes.train || !sizes.test) return null;
    const trainExamples = pick(grid.trainLimit, sizes.train);
    const testItems = pick(grid.testLimit, sizes.test);
    if (!trainExamples || !testItems) return null;
    const shape = {
      settings,
      seeds,
      params: { total: model.totalParams, middle: middle.reduce((a, l) => a + l.params, 0) },
      middleMatrices: middle.reduce((a, l) => a + matricesPerBlock(l.index), 0),
      trainExamples,
      testItems,
      epochs: grid.epochs,
      trainTokens: tokensPerRow(sizes.train?.charsPerRow ?? 0, grid.seqLen),
      testTokens: tokensPerRow(sizes.test?.charsPerRow ?? 0, model.maxPositions) * (sizes.test?.choices ?? 1),
      supportExamples: grid.supportExamples,
      seqLen: grid.seqLen,
      fullFT: grid.fullFT,
    };
    return { ...estimateGrid(shape, cal), shape };
  }, [model, cal, settings, seeds, grid, sizes, task]);

  const examples = `${grid.trainLimit ? `${grid.trainLimit} train` : 'all train'} / ${grid.testLimit ? `${grid.testLimit} test` : 'all test'} examples per setting`;
  const runs = settings.length * seeds;
  let estimate: ReactNode;
  if (!model) estimate = null;
  else if (calError) estimate = 'no time estimate (measuring this backend failed)';
  else if (!cal) estimate = "measuring this backend's speed for a time estimate…";
  else if (!est) estimate = task.length ? 'reading the task for a time estimate…' : 'choose a task for a time estimate';
  else {
    estimate = (
      <>
        <b>estimated {formatDuration(est.seconds)}</b> for {runs} run{runs === 1 ? '' : 's'}{' '}
        <span data-testid="grid-estimate-how">
          (an estimate: {(cal.forwardSecPerToken * 1000).toFixed(2)} ms/token measured on this machine; hover for how)
        </span>
      </>
    );
  }
  const how = cal
    ? `Estimate from a speed measured on this backend (${cal.backend}): ${(cal.forwardSecPerToken * 1000).toFixed(3)} ms per token of ${cal.model}'s forward pass, ` +
      `training ≈ 3× that, ${cal.svdSecondsPerMatrix.toFixed(2)} s per SVD of a middle matrix, ${cal.loadSeconds.toFixed(1)} s to load the model per run; ` +
      "token counts from the task file's size. " +
      (est
        ? `Per run: ${est.shape.trainExamples} training examples of about ${est.shape.trainTokens} tokens, ${est.shape.testItems} test items of about ${est.shape.testTokens} tokens scored. `
        : '') +
      'Other work on this machine makes it slower.'
    : undefined;
  return (
    <div className="muted small grid-estimate" data-testid="grid-estimate" title={how}>
      {estimate ? <span>{estimate}</span> : null}
      <span>
        {examples}
        {secPerSetting ? ` · the last grid took ${formatDuration(secPerSetting)} per run` : ''}
      </span>
    </div>
  );
}

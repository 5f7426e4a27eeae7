import { useRef, useState } from 'react';
import * as Comlink from 'comlink';
import type { GenerateResult, GenerateStage, GenerateTarget } from '../../jobs/studio-api';
import { isCancelError, reportError, studio } from '../studio';
import { CancelButton, NumField, Panel } from './common';

/**
 * "Try it": the worker exports the given model state to ONNX (transformers.js layout) and generates with
 * transformers.js on onnxruntime-web served from this origin; tokens stream into the output box.
 * `target` null = nothing to run yet (`hint` says what is missing).
 */
export function TryIt({ target, hint, testId }: { target: GenerateTarget | null; hint: string; testId: string }) {
  const [prompt, setPrompt] = useState('Once upon a time');
  const [maxNew, setMaxNew] = useState(20);
  const [sample, setSample] = useState(false);
  const [temperature, setTemperature] = useState(0.8);
  const [topK, setTopK] = useState(40);
  const [running, setRunning] = useState(false);
  const [text, setText] = useState('');
  const [result, setResult] = useState<GenerateResult | null>(null);

  const [jobId, setJobId] = useState<string | null>(null);
  /** What the worker is doing now; a cancel says where it stopped. */
  const [stage, setStage] = useState<GenerateStage | null>(null);
  const stageNow = useRef<GenerateStage | null>(null);
  /** Cancel was clicked for the running generation (the worker may still finish first). */
  const cancelAsked = useRef(false);
  const [lateCancel, setLateCancel] = useState(false);
  const [cancelled, setCancelled] = useState<GenerateStage | 'preparing' | null>(null);
  const run = async () => {
    if (!target) return;
    const id = `gen-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    setJobId(id);
    setCancelled(null);
    setStage(null);
    stageNow.current = null;
    cancelAsked.current = false;
    setLateCancel(false);
    setRunning(true);
    setText('');
    setResult(null);
    try {
      const r = await studio().generate(
        { target, prompt, maxNewTokens: maxNew, sample, temperature, topK, jobId: id },
        Comlink.proxy((t: string) => setText(t)),
        Comlink.proxy((st: GenerateStage) => {
          stageNow.current = st;
          setStage(st);
        }),
      );
      setText(r.text);
      setResult(r);
      // The last token came before the cancel did: say so rather than leave the click unanswered.
      if (cancelAsked.current) setLateCancel(true);
    } catch (e) {
      // The text generated before the cancel stays on screen.
      if (isCancelError(e)) setCancelled(stageNow.current ?? 'preparing');
      else reportError(e);
    } finally {
      setRunning(false);
      setJobId(null);
    }
  };

  return (
    <Panel title="Try it" className="try-it">
      <div data-testid={testId}>
        <label className="field wide">
          <span>prompt</span>
          <textarea rows={2} value={prompt} onChange={(e) => setPrompt(e.target.value)} data-testid={`${testId}-prompt`} />
        </label>
        <div className="row wrap">
          <NumField label="max new tokens" value={maxNew} onChange={setMaxNew} min={1} max={512} step={1} />
          <label className="field">
            <span>decoding</span>
            <select value={sample ? 'sample' : 'greedy'} onChange={(e) => setSample(e.target.value === 'sample')}>
              <option value="greedy">greedy</option>
              <option value="sample">sampling</option>
            </select>
          </label>
          {sample ? (
            <>
              <NumField label="temperature" value={temperature} onChange={setTemperature} min={0.05} max={5} step={0.05} />
              <NumField label="top-k" value={topK} onChange={setTopK} min={1} step={1} />
            </>
          ) : null}
          <button className="primary" disabled={!target || running || !prompt.trim()} onClick={run} title={target ? undefined : hint}>
            {running ? 'Generating…' : 'Generate'}
          </button>
          <CancelButton
            jobId={jobId}
            running={running}
            onCancel={() => {
              if (!jobId) return;
              cancelAsked.current = true;
              void studio().cancel(jobId);
            }}
          />
          {cancelled && !running ? (
            <span className="muted small" data-testid="job-status">
              cancelled {cancelled === 'generating' ? 'while generating' : `while ${cancelled}`}
            </span>
          ) : null}
          {lateCancel && !running ? <span className="muted small">finished before the cancel arrived</span> : null}
        </div>
        {!target ? <div className="meta">{hint}</div> : null}
        <pre className="try-output" data-testid={`${testId}-output`} aria-live="polite">
          {text ? (
            <>
              <span className="muted">{prompt}</span>
              {text}
            </>
          ) : running ? (
            <span className="muted" data-testid={`${testId}-stage`}>
              {stage ?? 'preparing'}…
            </span>
          ) : null}
        </pre>
        {result ? (
          <div className="meta" data-testid={`${testId}-meta`}>
            {result.model} · {result.promptTokens} prompt + {result.newTokens} new tokens · transformers.js on {result.device}
            {result.exportSeconds ? ` · export ${result.exportSeconds.toFixed(1)}s` : ' · export reused'} · generate{' '}
            {result.generateSeconds.toFixed(1)}s
          </div>
        ) : null}
      </div>
    </Panel>
  );
}

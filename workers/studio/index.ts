/**
 * The studio worker's API (src/jobs/studio-api.ts StudioApi), one module per concern:
 * models (open model / package / adapters / dataset), compress, tune (OPFS runs), eval (evaluation and
 * plug-in), protocol, generate ("try it"); backend (the engine's backend choice) and jobs (pause / cancel).
 * Importable without a worker (tests call it in Node on the CPU backend); studio.worker.ts exposes it.
 */
import type { Capabilities, StudioApi } from '../../src/jobs/studio-api';
import { probeBackend, watchBackend } from './backend';
import { compress, exportPackage, spectrum } from './compress';
import { evaluateRun, plugInJob } from './eval';
import { generateJob } from './generate';
import { openAdapters, openDataset, openModel, openPackage } from './models';
import { runProtocolJob } from './protocol';
import { calibrate, modelSpectra } from './research';
import { earlyCancels, jobControls, jobs } from './state';
import { checkpoint, discardCheckpoint, exportAdaptersJob, resumeRun, startTune } from './tune';

/** Everything is backed by real code now; the struct stays so a build without a part can switch it off. */
export async function capabilities(): Promise<Capabilities> {
  return {
    inspectModel: { available: true, note: 'src/model planHFLoad: config.json + safetensors headers' },
    compress: { available: true, note: 'src/ot compressModel (+ supportPass for gradot), in the studio worker' },
    exportPackage: { available: true, note: 'src/ot writeEmulatorPackage + zip' },
    openPackage: { available: true, note: 'zip/folder read in the worker (manifest + tensor headers)' },
    validateDataset: { available: true, note: 'src/data readDataset + validateDataset' },
    tune: { available: true, note: 'src/ot tune (adapter blocks or LoRA), OPFS checkpoints' },
    evaluate: { available: true, note: 'src/ot evaluate (acc/acc_norm or loss/perplexity)' },
    exportAdapters: { available: true, note: 'src/ot exportAdapter' },
    plugIn: { available: true, note: 'src/ot loadAdapter + plugIn + evaluate' },
    otProtocol: { available: true, note: 'src/ot runProtocol (compress, tune, evaluate, plug-in)' },
  };
}

export const api: StudioApi = {
  capabilities,
  probeBackend,
  async watchBackend(onChange) {
    watchBackend(onChange);
  },
  openModel,
  compress,
  exportPackage,
  spectrum,
  openPackage,
  openAdapters,
  plugIn: plugInJob,
  generate: generateJob,
  openDataset,
  tune: startTune,
  resumeRun,
  async pause(jobId: string) {
    const j = jobs.get(jobId);
    if (j) j.paused = true;
    jobControls.get(jobId)?.pauser.pause();
  },
  async resume(jobId: string) {
    const j = jobs.get(jobId);
    if (j) j.paused = false;
    jobControls.get(jobId)?.pauser.resume();
  },
  async cancel(jobId: string) {
    const j = jobs.get(jobId);
    if (j) j.cancelled = true;
    // A generation's id is chosen by the caller: its cancel may overtake the call that starts it.
    else if (jobId.startsWith('gen-')) earlyCancels.add(jobId);
    const c = jobControls.get(jobId);
    if (c) {
      c.pauser.resume();
      c.abort.abort();
    }
  },
  checkpoint,
  discardCheckpoint,
  evaluate: evaluateRun,
  exportAdapters: exportAdaptersJob,
  runProtocol: runProtocolJob,
  calibrate,
  modelSpectra,
};

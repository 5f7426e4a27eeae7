/**
 * What is open in this worker (models, packages, adapters, datasets, built emulators, tuned runs), keyed by
 * the ids the UI holds.
 */
import { type Dataset } from '../../src/data';
import { type CompressResult as OtCompressResult } from '../../src/ot/emulator/compress';
import { type EmulatorPackage } from '../../src/ot/emulator/package';
import { PauseController, type TuneResult as OtTuneResult } from '../../src/ot/offsite/tune';
import {
  type AdapterSummary,
  type DatasetPreview,
  type InputFile,
  type ModelSummary,
  type PackageSummary,
} from '../../src/jobs/studio-api';

export const openModels = new Map<string, { summary: ModelSummary; files: InputFile[] }>();

export const openPackages = new Map<string, { summary: PackageSummary; files: InputFile[]; pkg: EmulatorPackage }>();
export let nextId = 1;
export const newId = (prefix: string) => `${prefix}-${Date.now().toString(36)}-${nextId++}`;

export const openAdaptersMap = new Map<string, { summary: AdapterSummary; files: InputFile[] }>();

export const openDatasets = new Map<string, { preview: DatasetPreview; file: InputFile; dataset: Dataset }>();

export interface JobControl {
  paused: boolean;
  cancelled: boolean;
}
export const jobs = new Map<string, JobControl>();
/** Cancels of caller-named jobs (generation) that arrived before the job registered: it starts cancelled. */
export const earlyCancels = new Set<string>();
/** Tuning jobs pause and cancel through src/ot's own controls. */
export const jobControls = new Map<string, { abort: AbortController; pauser: PauseController }>();

export interface BuiltPackage {
  zip: Uint8Array;
  name: string;
  result: OtCompressResult;
  /** Source weights, kept so spectra can be computed on demand. */
  sourceWeights: Map<string, { shape: number[]; data: Float32Array }>;
}
export const builtPackages = new Map<string, BuiltPackage>();

/** Runs whose tuning is in progress in this worker (not offered for resume). */
export const activeRuns = new Set<string>();
export interface TunedRun {
  result: OtTuneResult;
  pkg: EmulatorPackage;
  pkgFiles: InputFile[];
  packageName: string;
  datasetName: string;
}
export const tunedRuns = new Map<string, TunedRun>();

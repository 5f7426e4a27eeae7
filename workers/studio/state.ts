/**
 * What is open in this worker (models, packages, adapters, datasets, built emulators, tuned runs), keyed by
 * the ids the UI holds.
 *
 * Between jobs the worker holds no decoded weights: a model is its dropped files (disk-backed Blobs), a
 * package its files and manifest, a built emulator its zip as a Blob and the compressor's record without
 * weights. A job decodes what it needs from those files and lets go of it when it ends (at real sizes one
 * decoded model is a GB or more, and the studio keeps every build and run for the session).
 */
import { type Dataset } from '../../src/data';
import { type CompressResult as OtCompressResult } from '../../src/ot/emulator/compress';
import { type EmulatorMeta } from '../../src/ot/emulator/package';
import { PauseController, type TuneResult as OtTuneResult } from '../../src/ot/offsite/tune';
import {
  type AdapterSummary,
  type DatasetPreview,
  type InputFile,
  type ModelSummary,
  type PackageSummary,
} from '../../src/jobs/studio-api';

export const openModels = new Map<string, { summary: ModelSummary; files: InputFile[] }>();

/** An opened package: its files and manifest; the weights are decoded from the files by each job (readPackage). */
export const openPackages = new Map<string, { summary: PackageSummary; files: InputFile[]; meta: EmulatorMeta }>();
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
  /** The package's zip, as offered for download (a Blob: the browser may keep it outside the page's heap). */
  zip: Blob;
  name: string;
  /** The compressor's record (ranks, kept components, scores), without the emulator's weights. */
  result: Omit<OtCompressResult, 'weights'>;
  /** The source model's files, so a spectrum re-reads its one source matrix on demand. */
  modelFiles: InputFile[];
  modelName: string;
  /** The middle blocks and their matrices (what has a spectrum). */
  middle: number[];
  projs: string[];
}
export const builtPackages = new Map<string, BuiltPackage>();

/** Runs whose tuning is in progress in this worker (not offered for resume). */
export const activeRuns = new Set<string>();
export interface TunedRun {
  result: OtTuneResult;
  /** The package's manifest; its weights are decoded from pkgFiles on demand (readPackage). */
  meta: EmulatorMeta;
  pkgFiles: InputFile[];
  packageName: string;
  datasetName: string;
}
export const tunedRuns = new Map<string, TunedRun>();

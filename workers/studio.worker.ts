/// <reference lib="webworker" />
/**
 * The studio's one worker: the comlink facade the UI talks to (API in src/jobs/studio-api.ts).
 *
 * Heavy state (opened models, packages, datasets, built emulators, tuned adapters) lives here, keyed by ids
 * the UI holds; the UI thread never runs numerics. Each operation is a thin composition of the numeric
 * modules: src/model (headers, loading, tokenizer, decoder), src/data (reading, validation, encoding),
 * src/ot (support pass, compression, packages, tuning with OPFS checkpoints, evaluation, export, plug-in,
 * the protocol) on the engine's WebGPU backend when the badge shows one, else the CPU backend.
 */
import * as Comlink from 'comlink';
import { api } from './studio';

Comlink.expose(api);

/**
 * Vitest setup: every test file runs with the CPU backend's thread pool started, at GRADOT_THREADS threads
 * (default: the machine's default, > 1 on any multi-core machine), so the whole suite exercises the threaded
 * GEMM; `GRADOT_THREADS=1 npx vitest run` runs it single-threaded.
 */
import { initCpuThreads } from './pool';

const env = process.env.GRADOT_THREADS;
await initCpuThreads(env ? { threads: Number(env) } : {});

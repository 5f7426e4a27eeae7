import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'tools/**/*.test.ts'],
    environment: 'node',
    testTimeout: 120_000,
    pool: 'forks',
    // The CPU backend's thread pool is on in every test file (GRADOT_THREADS=1 for one thread).
    setupFiles: ['src/engine/cpu/threads.setup.ts'],
    // tfjs-core's ES build uses extension-less imports that only a bundler resolves (the TF.js bench peer).
    server: { deps: { inline: [/@tensorflow\//] } },
  },
});

/** See launcher-env.mjs. */
export function mallocTuningEnv(env: Record<string, string | undefined>): Record<string, string> | null;

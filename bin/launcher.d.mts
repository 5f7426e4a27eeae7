/** See launcher.mjs. */
export function mallocTuningEnv(env: Record<string, string | undefined>): Record<string, string> | null;

/** See launcher.mjs. */
export function runTuned(
  command: string,
  args: string[],
  env: Record<string, string | undefined>,
): { child: import('node:child_process').ChildProcess; scratch: string; done: Promise<number> };

/**
 * One run per checkpoint folder in the browser: two tabs resuming the same OPFS run would interleave their
 * checkpoint writes. The Web Locks API holds a named lock for as long as the job runs (and releases it when
 * the tab or worker dies, so no stale locks); a second holder is refused at once with a named error.
 */
export class RunInUseError extends Error {
  override readonly name = 'RunInUseError';
  constructor(readonly run: string) {
    super(`${run} is being tuned in another tab or window of this studio; continue there, or close it first`);
  }
}

interface LockManagerLike {
  request<T>(name: string, opts: { ifAvailable: boolean }, cb: (lock: unknown) => Promise<T>): Promise<T>;
}

/** Runs `fn` holding the lock `gradot-run:<run>`; where the API is missing, runs it unguarded. */
export async function withRunLock<T>(run: string, fn: () => Promise<T>): Promise<T> {
  const locks = (globalThis as { navigator?: { locks?: LockManagerLike } }).navigator?.locks;
  if (!locks) return fn();
  return locks.request(`gradot-run:${run}`, { ifAvailable: true }, async (lock) => {
    if (!lock) throw new RunInUseError(run);
    return fn();
  });
}

/**
 * One run per checkpoint folder (Node). Two `gradot tune` runs on one folder would interleave their
 * manifest writes and checkpoints; the second is refused with who holds the folder.
 *
 * The lock is a file `LOCK` created exclusively (O_EXCL), holding `{pid, host, startedAt}`, and touched
 * every `heartbeatMs` while the run lives. It is stale — taken over, and said so — when its process is gone
 * (same host, `kill(pid, 0)` says ESRCH) or its heartbeat is older than `staleMs` (any host: a crashed
 * machine, a network folder). Release removes it only if it is still ours.
 */
import { hostname } from 'node:os';
import { open, readFile, rm, stat, utimes, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fsError } from './fs-errors';

export const LOCK_FILE = 'LOCK';

export class RunLockedError extends Error {
  override readonly name = 'RunLockedError';
  constructor(
    readonly dir: string,
    readonly holder: LockInfo,
  ) {
    super(
      `${dir} is in use by another run (pid ${holder.pid} on ${holder.host}, since ${holder.startedAt}); ` +
        `wait for it to finish, or remove ${join(dir, LOCK_FILE)} if that run is gone`,
    );
  }
}

export interface LockInfo {
  pid: number;
  host: string;
  startedAt: string;
  token: string;
}

export interface RunLock {
  /** Set when a stale lock was taken over: says whose. */
  tookOver: string | null;
  release(): Promise<void>;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

export async function acquireRunLock(dir: string, opts: { heartbeatMs?: number; staleMs?: number } = {}): Promise<RunLock> {
  const heartbeatMs = opts.heartbeatMs ?? 30_000;
  const staleMs = opts.staleMs ?? 10 * 60_000;
  const path = join(dir, LOCK_FILE);
  const me: LockInfo = {
    pid: process.pid,
    host: hostname(),
    startedAt: new Date().toISOString(),
    token: Math.random().toString(36).slice(2),
  };
  let tookOver: string | null = null;
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    throw fsError(e, dir, 'create the checkpoint folder');
  }
  for (let attempt = 0; ; attempt++) {
    try {
      const fh = await open(path, 'wx');
      try {
        await fh.writeFile(JSON.stringify(me));
      } finally {
        await fh.close();
      }
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw fsError(e, path, 'create the run lock');
      if (attempt >= 3) throw e;
      let holder: LockInfo;
      let age: number;
      try {
        holder = JSON.parse(await readFile(path, 'utf8')) as LockInfo;
        age = Date.now() - (await stat(path)).mtimeMs;
      } catch {
        // Unreadable or vanished between our open and read: a crashed write, or just released. Retry.
        holder = { pid: -1, host: '?', startedAt: '?', token: '' };
        age = Infinity;
      }
      const deadHere = holder.host === me.host && holder.pid > 0 && !alive(holder.pid);
      if (!(deadHere || age > staleMs || holder.pid === -1)) throw new RunLockedError(dir, holder);
      tookOver = `took over a stale lock (pid ${holder.pid} on ${holder.host}, since ${holder.startedAt}: ${deadHere ? 'that process is gone' : `no heartbeat for ${Math.round(age / 1000)} s`})`;
      await rm(path, { force: true });
    }
  }
  const beat = setInterval(() => {
    const now = new Date();
    void utimes(path, now, now).catch(() => undefined);
  }, heartbeatMs);
  beat.unref?.();
  return {
    tookOver,
    async release() {
      clearInterval(beat);
      try {
        const cur = JSON.parse(await readFile(path, 'utf8')) as LockInfo;
        if (cur.token === me.token) await rm(path, { force: true });
      } catch {
        /* already gone */
      }
    },
  };
}

/**
 * Node file-system errors as named errors that say which file and what to do. Raw Node messages
 * (`EISDIR: illegal operation on a directory, read`, `The "paths[1]" argument must be of type string`)
 * reach the user without the file they concern or in words only a programmer reads.
 */
import { FileAccessError } from './errors';

const REASONS: Record<string, string> = {
  ENOENT: 'no such file or folder',
  EISDIR: 'it is a folder, not a file',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'the file system is read-only',
  ENOSPC: 'no space left on the device (free some space, or write somewhere else)',
  EDQUOT: 'disk quota exceeded',
  EEXIST: 'it already exists',
  ENAMETOOLONG: 'the name is too long',
  EMFILE: 'too many open files',
  ENOTEMPTY: 'the folder is not empty',
  EXDEV: 'cannot move across devices',
  EBUSY: 'the file is busy',
  ELOOP: 'too many symbolic links',
  ERR_FS_FILE_TOO_LARGE: 'the file is too large to read into memory at once',
};

/** A Node error with a `code` (ENOENT, ...)? */
export function isNodeFsError(e: unknown): e is NodeJS.ErrnoException & { code: string } {
  return (
    typeof e === 'object' &&
    e !== null &&
    typeof (e as { code?: unknown }).code === 'string' &&
    /^(E[A-Z]+$|ERR_FS_)/.test((e as { code: string }).code)
  );
}

/**
 * Wraps a Node error as a FileAccessError naming `path` (or the error's own path) and the action; other
 * errors pass through unchanged.
 */
export function fsError(e: unknown, path: string | undefined, action: string): unknown {
  if (e instanceof FileAccessError) return e;
  if (isNodeFsError(e)) {
    const p = path ?? e.path ?? '(unknown file)';
    return new FileAccessError(p, e.code, action, REASONS[e.code] ?? `${e.code} (${e.message})`);
  }
  if (
    typeof e === 'object' &&
    e !== null &&
    (e as { code?: unknown }).code === 'ERR_INVALID_ARG_TYPE' &&
    /"path|paths\[/.test(String((e as Error).message))
  ) {
    return new FileAccessError(
      path ?? '(missing path)',
      'ERR_INVALID_ARG_TYPE',
      action,
      'a file or folder argument is missing (no path given)',
    );
  }
  return e;
}

/** Runs `fn`, turning Node file errors into FileAccessErrors about `path`. */
export async function withFile<T>(path: string, action: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw fsError(e, path, action);
  }
}

/** For a CLI's last-resort handler: any Node file error still raw becomes a named one (path from the error). */
export function namedError(e: unknown): unknown {
  return fsError(e, undefined, (e as { syscall?: string })?.syscall ?? 'access');
}

/**
 * Named errors for the fault paths: each message names the file and what is wrong, and limit errors name
 * the limit, so a user (or a script reading `err.name`/`err.code`) can tell a hostile or broken input from
 * a bug without a stack trace.
 */

/** An input exceeds one of the hard limits in ./limits.ts. `limit` names it ("zip.maxTotalBytes", ...). */
export class LimitError extends Error {
  override readonly name = 'LimitError';
  constructor(
    readonly file: string,
    readonly limit: string,
    message: string,
  ) {
    super(`${file}: ${message} (limit ${limit})`);
  }
}

/** A .zip that is malformed or uses a feature we do not read (encryption, unknown compression). */
export class ZipError extends Error {
  override readonly name = 'ZipError';
  constructor(
    readonly file: string,
    message: string,
    readonly entry?: string,
  ) {
    super(`${file}${entry !== undefined ? ` [${entry}]` : ''}: ${message}`);
  }
}

/** A job produced or met a NaN or ±Infinity where only finite numbers are meaningful. */
export class NonFiniteError extends Error {
  override readonly name = 'NonFiniteError';
  constructor(
    /** What was non-finite: "training loss", "gradient norm", "weights", "logits", ... */
    readonly what: string,
    message: string,
  ) {
    super(message);
  }
}

/** An output location that would destroy inputs or unrelated files, or cannot be written. */
export class OutputFolderError extends Error {
  override readonly name = 'OutputFolderError';
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
  }
}

/** A file-system error (ENOENT, EISDIR, EACCES, ENOSPC, ...) with the file it concerns and a plain reason. */
export class FileAccessError extends Error {
  override readonly name = 'FileAccessError';
  constructor(
    readonly path: string,
    readonly code: string,
    readonly action: string,
    message: string,
  ) {
    super(`${path}: cannot ${action}: ${message}`);
  }
}

/**
 * Named errors for model loading. Every message names the file (and tensor where there is one) so a user
 * who dropped the wrong folder into the browser can tell what to fix without a stack trace.
 */

export type SafetensorsErrorCode =
  | 'truncated'
  | 'header-too-large'
  | 'bad-header-json'
  | 'bad-header'
  | 'offsets-out-of-range'
  | 'overlapping'
  | 'size-mismatch'
  | 'unknown-dtype'
  | 'duplicate-name';

export class SafetensorsError extends Error {
  override readonly name = 'SafetensorsError';
  constructor(
    readonly code: SafetensorsErrorCode,
    readonly file: string,
    message: string,
    readonly tensor?: string,
  ) {
    super(`${file}${tensor !== undefined ? ` [${tensor}]` : ''}: ${message}`);
  }
}

/** A config or checkpoint that is well-formed but not something we can load (unsupported family/option, missing file/tensor). */
export class ModelFormatError extends Error {
  override readonly name = 'ModelFormatError';
  constructor(
    message: string,
    readonly file?: string,
    readonly tensor?: string,
  ) {
    super(file !== undefined ? `${file}${tensor !== undefined ? ` [${tensor}]` : ''}: ${message}` : message);
  }
}

export class ShapeMismatchError extends Error {
  override readonly name = 'ShapeMismatchError';
  constructor(
    readonly file: string,
    readonly tensor: string,
    readonly expected: readonly number[],
    readonly got: readonly number[],
    detail = '',
  ) {
    super(
      `${file} [${tensor}]: shape mismatch: expected [${expected.join(', ')}], got [${got.join(', ')}]` + (detail ? ` (${detail})` : ''),
    );
  }
}

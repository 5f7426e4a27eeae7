export type DatasetErrorCode =
  | 'empty' // no records at all
  | 'not-utf8' // bytes are not valid UTF-8
  | 'bad-json' // a JSON Lines line does not parse, or is not an object
  | 'bad-csv' // CSV structure: unterminated quote, wrong column count, duplicate header
  | 'unknown-format' // file extension not .jsonl/.csv/.txt and no format given
  | 'unknown-kind' // first record matches no known record shape
  | 'missing-field'
  | 'bad-type' // a field has the wrong JSON type
  | 'bad-value' // right type, unusable value (e.g. an empty choice)
  | 'label-out-of-range'
  | 'mixed-kinds' // a record of another kind than the first one
  | 'too-long' // the part that must be kept (answer/choice) alone exceeds the context
  | 'line-too-long' // one line is longer than the reader's line limit (a file with no line breaks?)
  | 'too-large'; // the file is larger than the reader accepts (size named in the message)

/**
 * Every problem with user data is one of these, with a message that names the file and, where the format
 * has lines, the 1-based line: `train.jsonl line 7: missing field "answer"`.
 */
export class DatasetError extends Error {
  override readonly name = 'DatasetError';
  readonly code: DatasetErrorCode;
  readonly file: string;
  readonly line: number | null;
  /** The message without the `file line N:` prefix. */
  readonly detail: string;

  constructor(code: DatasetErrorCode, file: string, line: number | null, detail: string) {
    super(line != null ? `${file} line ${line}: ${detail}` : `${file}: ${detail}`);
    this.code = code;
    this.file = file;
    this.line = line;
    this.detail = detail;
  }
}

export function isDatasetError(e: unknown): e is DatasetError {
  return e instanceof DatasetError;
}

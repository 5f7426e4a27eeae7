import Papa from 'papaparse';
import { DatasetError } from './errors';
import { renderTemplate, resolveTemplate, TemplateError, type RecordTemplate } from './templates';
import type { ChoiceRecord, Dataset, DatasetFormat, DatasetKind, PromptRecord, TextRecord } from './types';
import { decodeUtf8Strict, utf8LineError } from './utf8';
import { DATA_LIMITS, formatBytes } from '../faults/limits';

/**
 * Dataset readers: bytes + file name in, typed records out, identical in Node and the browser (no fs, no
 * DOM). Every failure is a DatasetError naming the file and 1-based line.
 *
 * Kinds are detected from the first record (see `detectKind`) and every later record must be of the
 * same kind; a record of another kind is 'mixed-kinds', not silently dropped.
 */

/** Source field names for each record field; defaults are the field names themselves. */
export interface FieldMapping {
  text?: string;
  context?: string;
  /** One field holding a list (or, in CSV, a JSON array in one cell), or one field per choice. */
  choices?: string | string[];
  label?: string;
  prompt?: string;
  answer?: string;
}

export interface ReadOptions {
  /** Overrides the format implied by the file name. */
  format?: DatasetFormat;
  /** Require this kind (an error names the mismatch) instead of accepting whatever the first record is. */
  kind?: DatasetKind;
  /** Rename fields (JSON Lines keys or CSV header names). Ignored when `template` is given. */
  fields?: FieldMapping;
  /** Build records from `{field}` templates over each row; the template fixes the kind. */
  template?: RecordTemplate;
  /** CSV field delimiter; default ',' (tab for .tsv). */
  csvDelimiter?: string;
  /**
   * TXT: 'blank-line' (default) makes each blank-line-separated paragraph block a document; 'line' makes
   * every non-empty line a document.
   */
  txtSplit?: 'blank-line' | 'line';
  /** Overrides of the size limits (tests use small ones; see src/faults/limits.ts). */
  limits?: Partial<DataLimits>;
}

export type DataLimits = { -readonly [K in keyof typeof DATA_LIMITS]: number };

/** Options of the chunked readers. */
export interface StreamReadOptions extends ReadOptions {
  /** Total size when known up front (a File, a stat): a file over the limit is refused before reading. */
  size?: number;
  /** Bytes consumed so far (and the total when known), after each chunk. */
  onProgress?: (bytes: number, total: number | null) => void;
}

const EXT_FORMAT: Record<string, DatasetFormat> = {
  jsonl: 'jsonl',
  ndjson: 'jsonl',
  jsonlines: 'jsonl',
  csv: 'csv',
  tsv: 'csv',
  txt: 'txt',
  text: 'txt',
  md: 'txt',
};

/** Format implied by a file name's extension, or null. */
export function formatFromFileName(file: string): DatasetFormat | null {
  const m = /\.([a-z0-9]+)$/i.exec(file);
  return m ? (EXT_FORMAT[(m[1] as string).toLowerCase()] ?? null) : null;
}

function limitsOf(opts: ReadOptions): DataLimits {
  return { ...DATA_LIMITS, ...opts.limits };
}

function formatOf(file: string, opts: ReadOptions): DatasetFormat {
  const format = opts.format ?? formatFromFileName(file);
  if (!format) {
    throw new DatasetError(
      'unknown-format',
      file,
      null,
      'unknown file type; use .jsonl, .csv, .tsv or .txt, or pass the format explicitly',
    );
  }
  return format;
}

function tooLarge(file: string, size: number, limit: number, what = 'the limit for one dataset file'): DatasetError {
  return new DatasetError(
    'too-large',
    file,
    null,
    `file is ${formatBytes(size)}, more than ${formatBytes(limit)} (${what}); split it or sample it (records are held in memory)`,
  );
}

/**
 * Incremental reader: bytes in (any chunking), records out. JSON Lines and text are consumed line by line
 * (each line decoded on its own, strict UTF-8), so no string ever holds the whole file: a 600 MB file is
 * not one string past V8's limit, and a 100 MB line is refused as soon as it passes the line limit. CSV
 * (whose quoted cells may span lines) is collected and parsed whole, under its own, smaller size limit.
 */
class DatasetReader {
  private readonly format: DatasetFormat;
  private readonly limits: DataLimits;
  private bytes = 0;
  // line state
  private parts: Uint8Array[] = [];
  private partLen = 0;
  private lineNo = 1;
  private lineStart = 0;
  private fileStart: Uint8Array | null = null;
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });
  private readonly sink: LineSink | null;
  private readonly csv: Uint8Array[] = [];

  constructor(
    private readonly file: string,
    private readonly opts: ReadOptions,
  ) {
    this.format = formatOf(file, opts);
    this.limits = limitsOf(opts);
    this.sink = this.format === 'csv' ? null : this.format === 'jsonl' ? new JsonlSink(file, opts) : new TxtSink(file, opts);
  }

  get consumed(): number {
    return this.bytes;
  }

  checkSize(size: number): void {
    if (size > this.limits.maxFileBytes) throw tooLarge(this.file, size, this.limits.maxFileBytes);
    if (this.format === 'csv' && size > this.limits.maxCsvBytes) {
      throw tooLarge(
        this.file,
        size,
        this.limits.maxCsvBytes,
        'the limit for CSV, which is parsed as one text; JSON Lines has a larger one',
      );
    }
  }

  /** `owned`: the caller keeps `chunk` unchanged until finish (no copies of line parts needed). */
  push(chunk: Uint8Array, owned = false): void {
    if (chunk.length === 0) return;
    this.bytes += chunk.length;
    this.checkSize(this.bytes);
    if (!this.fileStart) this.fileStart = chunk.slice(0, 4);
    if (!this.sink) {
      this.csv.push(chunk);
      return;
    }
    let s = 0;
    for (;;) {
      const i = chunk.indexOf(0x0a, s);
      if (i < 0) {
        this.append(chunk.subarray(s), owned);
        return;
      }
      this.append(chunk.subarray(s, i), owned);
      this.emit(i - s + 1);
      s = i + 1;
    }
  }

  private append(seg: Uint8Array, owned: boolean): void {
    if (seg.length === 0) return;
    this.partLen += seg.length;
    if (this.partLen > this.limits.maxLineBytes) {
      throw new DatasetError(
        'line-too-long',
        this.file,
        this.lineNo,
        `the line is longer than ${formatBytes(this.limits.maxLineBytes)} (the limit for one line)` +
          (this.format === 'jsonl' ? '; JSON Lines needs one record per line — is this one big JSON document?' : ''),
      );
    }
    // Chunks may be reused by their producer (streams): keep a copy of the part of the line we hold.
    this.parts.push(owned ? seg : seg.slice());
  }

  /** Completes the current line; `advance` is its byte length including the newline. */
  private emit(advanceTail: number): void {
    let lineBytes: Uint8Array;
    if (this.parts.length === 1) lineBytes = this.parts[0]!;
    else {
      lineBytes = new Uint8Array(this.partLen);
      let o = 0;
      for (const p of this.parts) lineBytes.set(p, o), (o += p.length);
    }
    let text: string;
    try {
      text = this.decoder.decode(lineBytes);
    } catch {
      throw utf8LineError(lineBytes, this.file, this.lineNo, this.lineStart, this.fileStart ?? lineBytes);
    }
    this.sink!.line(text, this.lineNo);
    this.lineStart += this.partLen + (advanceTail > 0 ? 1 : 0);
    this.lineNo++;
    this.parts = [];
    this.partLen = 0;
  }

  finish(): Dataset {
    if (this.bytes === 0) throw new DatasetError('empty', this.file, null, 'file is empty');
    if (!this.sink) {
      const all = new Uint8Array(this.bytes);
      let o = 0;
      for (const c of this.csv) all.set(c, o), (o += c.length);
      return parseDatasetText(decodeUtf8Strict(all, this.file), this.file, { ...this.opts, format: 'csv' });
    }
    if (this.partLen > 0) this.emit(0);
    return this.sink.finish();
  }
}

/** Parses a dataset file (JSON Lines and text line by line; see DatasetReader). */
export function readDataset(bytes: Uint8Array, file: string, opts: ReadOptions = {}): Dataset {
  const r = new DatasetReader(file, opts);
  if (bytes.length === 0) throw new DatasetError('empty', file, null, 'file is empty');
  r.checkSize(bytes.length);
  r.push(bytes, true);
  return r.finish();
}

/**
 * Reads a dataset from chunks (a file stream, `Blob.stream()`), with progress; a file over the size limit
 * is refused before reading when its size is known, else as soon as it passes the limit.
 */
export async function readDatasetChunks(
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  file: string,
  opts: StreamReadOptions = {},
): Promise<Dataset> {
  const r = new DatasetReader(file, opts);
  if (opts.size !== undefined) r.checkSize(opts.size);
  for await (const c of chunks) {
    r.push(c);
    opts.onProgress?.(r.consumed, opts.size ?? null);
  }
  return r.finish();
}

/** Reads a browser File (or any Blob with a name) the same way, streamed; the bytes never leave the page. */
export async function readDatasetBlob(blob: Blob, file: string, opts: StreamReadOptions = {}): Promise<Dataset> {
  const size = blob.size;
  if (typeof blob.stream !== 'function') return readDataset(new Uint8Array(await blob.arrayBuffer()), file, opts);
  const stream = blob.stream() as unknown as ReadableStream<Uint8Array>;
  const reader = stream.getReader();
  const chunks: AsyncIterable<Uint8Array> = {
    async *[Symbol.asyncIterator]() {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        yield value;
      }
    },
  };
  try {
    return await readDatasetChunks(chunks, file, { ...opts, size });
  } finally {
    reader.releaseLock();
  }
}

/** Parses already-decoded text (e.g. from a textarea). */
export function parseDatasetText(text: string, file: string, opts: ReadOptions = {}): Dataset {
  const format = opts.format ?? formatFromFileName(file);
  if (!format) throw new DatasetError('unknown-format', file, null, 'unknown file type');
  if (text.trim() === '') throw new DatasetError('empty', file, null, 'file is empty');
  let ds: Dataset;
  if (format === 'jsonl') ds = readJsonl(text, file, opts);
  else if (format === 'csv') ds = readCsv(text, file, opts);
  else ds = readTxt(text, file, opts);
  if (ds.records.length === 0) throw new DatasetError('empty', file, null, 'no records');
  return ds;
}

// ---------------------------------------------------------------------------------------------------
// Record building, shared by JSON Lines and CSV

const KIND_NAME: Record<DatasetKind, string> = {
  lm: 'language-modelling text ({"text"})',
  mc: 'multiple choice ({"context","choices","label"})',
  sft: 'prompt/answer ({"prompt","answer"})',
};

interface Norm {
  text?: unknown;
  context?: unknown;
  choices?: unknown;
  label?: unknown;
  prompt?: unknown;
  answer?: unknown;
}

type Row = Readonly<Record<string, unknown>>;

type AnyRecord = TextRecord | ChoiceRecord | PromptRecord;

class RecordBuilder {
  private kind: DatasetKind | null;
  private firstLine = 0;
  readonly records: AnyRecord[] = [];
  private readonly f: Required<Omit<FieldMapping, 'choices'>> & { choices: string | string[] };

  constructor(
    private readonly file: string,
    private readonly opts: ReadOptions,
    /** CSV cells are all strings, so labels and choice lists arrive as text and are parsed. */
    private readonly fromText: boolean,
    fields: FieldMapping,
  ) {
    this.kind = opts.template ? opts.template.kind : null;
    if (opts.template && opts.kind && opts.template.kind !== opts.kind) {
      throw new DatasetError('mixed-kinds', file, null, `template builds ${opts.template.kind} records but ${opts.kind} was required`);
    }
    this.f = {
      text: fields.text ?? 'text',
      context: fields.context ?? 'context',
      choices: fields.choices ?? 'choices',
      label: fields.label ?? 'label',
      prompt: fields.prompt ?? 'prompt',
      answer: fields.answer ?? 'answer',
    };
  }

  get datasetKind(): DatasetKind | null {
    return this.kind;
  }

  private err(code: ConstructorParameters<typeof DatasetError>[0], line: number, detail: string): DatasetError {
    return new DatasetError(code, this.file, line, detail);
  }

  private normalize(row: Row): Norm {
    const f = this.f;
    const get = (k: string): unknown => (Object.hasOwn(row, k) ? row[k] : undefined);
    const choices = Array.isArray(f.choices)
      ? f.choices.every((c) => get(c) !== undefined)
        ? f.choices.map(get)
        : undefined
      : get(f.choices);
    return {
      text: get(f.text),
      context: get(f.context),
      choices,
      label: get(f.label),
      prompt: get(f.prompt),
      answer: get(f.answer),
    };
  }

  private static detect(n: Norm): DatasetKind | null {
    const has = (v: unknown) => v !== undefined && v !== null;
    if (has(n.choices) || (has(n.context) && has(n.label))) return 'mc';
    if (has(n.prompt) || has(n.answer)) return 'sft';
    if (has(n.text)) return 'lm';
    return null;
  }

  add(row: Row, line: number): void {
    if (this.opts.template) {
      this.records.push(this.fromTemplate(this.opts.template, row, line));
      return;
    }
    const n = this.normalize(row);
    if (this.kind === null) {
      const k = this.opts.kind ?? RecordBuilder.detect(n);
      if (!k) {
        const f = this.f;
        const found = Object.keys(row)
          .slice(0, 8)
          .map((k2) => JSON.stringify(k2))
          .join(', ');
        throw this.err(
          'unknown-kind',
          line,
          `cannot tell the record kind: expected "${f.text}" (text), "${f.prompt}"+"${f.answer}" (prompt/answer) or ` +
            `"${f.context}"+"${String(f.choices)}"+"${f.label}" (multiple choice); found ${found || 'no fields'}`,
        );
      }
      this.kind = k;
      this.firstLine = line;
    }
    this.records.push(this.build(this.kind, n, line));
  }

  private missing(field: string, n: Norm, line: number): DatasetError {
    const other = RecordBuilder.detect(n);
    if (other && other !== this.kind && this.kind) {
      if (this.opts.kind) {
        return this.err('mixed-kinds', line, `record is ${KIND_NAME[other]} but ${KIND_NAME[this.kind]} is required`);
      }
      return this.err(
        'mixed-kinds',
        line,
        `record is ${KIND_NAME[other]} but the file's first record (line ${this.firstLine}) is ${KIND_NAME[this.kind]}`,
      );
    }
    return this.err('missing-field', line, `missing field "${field}"`);
  }

  private str(v: unknown, field: string, n: Norm, line: number): string {
    if (v === undefined || v === null) throw this.missing(field, n, line);
    if (typeof v !== 'string') throw this.err('bad-type', line, `field "${field}" must be a string, got ${typeName(v)}`);
    return v;
  }

  private build(kind: DatasetKind, n: Norm, line: number): AnyRecord {
    const f = this.f;
    if (kind === 'lm') return { text: this.str(n.text, f.text, n, line), line };
    if (kind === 'sft') {
      return { prompt: this.str(n.prompt, f.prompt, n, line), answer: this.str(n.answer, f.answer, n, line), line };
    }
    const context = this.str(n.context, f.context, n, line);
    const choicesName = Array.isArray(f.choices) ? f.choices.join('/') : f.choices;
    const choices = this.choiceList(n.choices, choicesName, n, line);
    if (n.label === undefined || n.label === null) throw this.missing(f.label, n, line);
    const label = this.labelIndex(n.label, f.label, choices, line, Array.isArray(f.choices) ? f.choices : null);
    return { context, choices, label, line };
  }

  private choiceList(v: unknown, field: string, n: Norm, line: number): string[] {
    if (v === undefined || v === null) throw this.missing(field, n, line);
    let list = v;
    if (typeof v === 'string' && this.fromText) {
      try {
        list = JSON.parse(v);
      } catch {
        throw this.err('bad-type', line, `field "${field}" must hold a JSON array of strings, e.g. ["yes","no"]`);
      }
    }
    if (!Array.isArray(list)) throw this.err('bad-type', line, `field "${field}" must be an array of strings, got ${typeName(list)}`);
    const out: string[] = [];
    list.forEach((c, i) => {
      if (typeof c !== 'string') throw this.err('bad-type', line, `choice ${i} must be a string, got ${typeName(c)}`);
      // An empty choice has no tokens to score and zero length for acc_norm.
      if (c.trim() === '') throw this.err('bad-value', line, `choice ${i} is empty`);
      out.push(c);
    });
    if (out.length < 2) throw this.err('bad-value', line, `multiple choice needs at least 2 choices, got ${out.length}`);
    return out;
  }

  /**
   * Label forms: a JSON integer; from text (CSV cells, templates) also an integer string, a letter A..Z
   * (or the name of a choice column, for CSVs with A/B/C/D columns), or the exact text of a choice.
   */
  private labelIndex(v: unknown, field: string, choices: string[], line: number, choiceColumns: string[] | null): number {
    let idx: number | null = null;
    if (typeof v === 'number') {
      if (!Number.isInteger(v)) throw this.err('bad-type', line, `field "${field}" must be an integer index, got ${v}`);
      idx = v;
    } else if (typeof v === 'string' && (this.fromText || this.opts.template)) {
      const s = v.trim();
      if (/^-?\d+$/.test(s)) idx = Number(s);
      else if (choiceColumns && choiceColumns.includes(s)) idx = choiceColumns.indexOf(s);
      else if (/^[A-Z]$/.test(s)) idx = s.charCodeAt(0) - 65;
      else if (choices.includes(v)) idx = choices.indexOf(v);
      else {
        throw this.err(
          'bad-type',
          line,
          `field "${field}" must be a choice index, a letter A-Z or a choice's text, got ${JSON.stringify(v)}`,
        );
      }
    } else {
      throw this.err('bad-type', line, `field "${field}" must be an integer index, got ${typeName(v)}`);
    }
    if (idx < 0 || idx >= choices.length) {
      throw this.err('label-out-of-range', line, `label ${idx} is out of range for ${choices.length} choices (0..${choices.length - 1})`);
    }
    return idx;
  }

  private fromTemplate(t: RecordTemplate, row: Row, line: number): AnyRecord {
    try {
      if (t.kind === 'lm') return { text: renderTemplate(t.text, row), line };
      if (t.kind === 'sft') return { prompt: renderTemplate(t.prompt, row), answer: renderTemplate(t.answer, row), line };
      const context = renderTemplate(t.context, row);
      const choices = Array.isArray(t.choices)
        ? this.choiceList(
            t.choices.map((c) => renderTemplate(c, row)),
            'choices',
            {},
            line,
          )
        : this.choiceListFromTemplate(resolveTemplate(t.choices, row), t.choices, line);
      const label = this.labelIndex(resolveTemplate(t.label, row), t.label, choices, line, null);
      return { context, choices, label, line };
    } catch (e) {
      if (e instanceof TemplateError) {
        throw this.err(e.kind === 'missing-field' ? 'missing-field' : 'bad-value', line, e.message);
      }
      throw e;
    }
  }

  private choiceListFromTemplate(v: unknown, tpl: string, line: number): string[] {
    if (typeof v === 'string') {
      try {
        return this.choiceList(JSON.parse(v), tpl, {}, line);
      } catch (e) {
        if (e instanceof DatasetError) throw e;
        throw this.err('bad-type', line, `choices template ${JSON.stringify(tpl)} must give a JSON array of strings`);
      }
    }
    return this.choiceList(v, tpl, {}, line);
  }
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function finish(file: string, format: DatasetFormat, b: RecordBuilder, required: DatasetKind | undefined): Dataset {
  const kind = b.datasetKind;
  if (!kind) throw new DatasetError('empty', file, null, 'no records');
  if (required && kind !== required) {
    throw new DatasetError('mixed-kinds', file, null, `expected ${KIND_NAME[required]} but the file holds ${KIND_NAME[kind]}`);
  }
  // The builder only ever produced records of `kind`, so the casts below are sound.
  if (kind === 'lm') return { file, format, kind, records: b.records as TextRecord[] };
  if (kind === 'mc') return { file, format, kind, records: b.records as ChoiceRecord[] };
  return { file, format, kind, records: b.records as PromptRecord[] };
}

// ---------------------------------------------------------------------------------------------------
// JSON Lines

/** Consumer of a file's lines (1-based numbers); `finish` gives the dataset or throws DatasetError. */
interface LineSink {
  line(text: string, n: number): void;
  finish(): Dataset;
}

class JsonlSink implements LineSink {
  private readonly b: RecordBuilder;
  constructor(
    private readonly file: string,
    private readonly opts: ReadOptions,
  ) {
    this.b = new RecordBuilder(file, opts, false, opts.fields ?? {});
  }

  line(raw: string, line: number): void {
    if (raw.trim() === '') return;
    const file = this.file;
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch (e) {
      // V8's message quotes the whole line; a long review would flood the UI, so cap it.
      let why = e instanceof Error ? e.message : String(e);
      if (why.length > 160) why = why.slice(0, 157) + '...';
      throw new DatasetError('bad-json', file, line, `not valid JSON (${why})`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      const hint = Array.isArray(v) && line === 1 ? ' (JSON Lines needs one object per line, not one array)' : '';
      throw new DatasetError('bad-json', file, line, `expected a JSON object, got ${typeName(v)}${hint}`);
    }
    this.b.add(v as Row, line);
  }

  finish(): Dataset {
    if (this.b.records.length === 0) throw new DatasetError('empty', this.file, null, 'file is empty');
    return finish(this.file, 'jsonl', this.b, this.opts.kind);
  }
}

function readJsonl(text: string, file: string, opts: ReadOptions): Dataset {
  const sink = new JsonlSink(file, opts);
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) sink.line(lines[i] as string, i + 1);
  return sink.finish();
}

// ---------------------------------------------------------------------------------------------------
// CSV (RFC 4180 via papaparse; first row is the header)

/** Choice columns recognised without a mapping: choice0.., option_1.., ending0.., or A, B, C, … */
function detectChoiceColumns(header: string[]): string[] | null {
  const numbered = header
    .map((h) => ({ h, m: /^(?:choice|option|ending)[ _-]?(\d+)$/i.exec(h) }))
    .filter((x) => x.m)
    .sort((a, b) => Number(a.m?.[1]) - Number(b.m?.[1]))
    .map((x) => x.h);
  if (numbered.length >= 2) return numbered;
  const letters: string[] = [];
  for (let c = 65; c <= 90 && header.includes(String.fromCharCode(c)); c++) letters.push(String.fromCharCode(c));
  return letters.length >= 2 ? letters : null;
}

function readCsv(text: string, file: string, opts: ReadOptions): Dataset {
  const delimiter = opts.csvDelimiter ?? (/\.tsv$/i.test(file) ? '\t' : ',');
  const rows: { data: string[]; cursor: number; errors: Papa.ParseError[] }[] = [];
  Papa.parse<string[]>(text, {
    delimiter,
    skipEmptyLines: 'greedy',
    step: (r) => rows.push({ data: r.data, cursor: r.meta.cursor, errors: r.errors }),
  });

  // Line numbers: a quoted cell may span lines, so count newlines up to where each row starts.
  let pos = 0;
  let line = 1;
  const advance = (to: number) => {
    for (; pos < to && pos < text.length; pos++) if (text.charCodeAt(pos) === 10) line++;
  };
  const skipBlank = () => {
    while (pos < text.length && /[\r\n \t]/.test(text[pos] as string)) {
      if (text.charCodeAt(pos) === 10) line++;
      pos++;
    }
  };

  let header: string[] | null = null;
  let b: RecordBuilder | null = null;
  for (const r of rows) {
    skipBlank();
    const rowLine = line;
    if (r.errors.length > 0) {
      const e = r.errors[0] as Papa.ParseError;
      let errLine = rowLine;
      if (typeof e.index === 'number') {
        errLine = 1;
        for (let i = 0; i < e.index && i < text.length; i++) if (text.charCodeAt(i) === 10) errLine++;
      }
      throw new DatasetError('bad-csv', file, errLine, `CSV: ${e.message}`);
    }
    advance(r.cursor);
    if (!header) {
      header = r.data.map((h, i) => (i === 0 ? h.replace(/^\uFEFF/, '') : h).trim());
      const seen = new Set<string>();
      for (const h of header) {
        if (h !== '' && seen.has(h)) throw new DatasetError('bad-csv', file, rowLine, `CSV header repeats column "${h}"`);
        seen.add(h);
      }
      const fields: FieldMapping = { ...opts.fields };
      if (!opts.template && fields.choices === undefined && !header.includes('choices')) {
        const cols = detectChoiceColumns(header);
        if (cols) fields.choices = cols;
      }
      b = new RecordBuilder(file, opts, true, fields);
      continue;
    }
    if (r.data.length !== header.length) {
      throw new DatasetError('bad-csv', file, rowLine, `CSV row has ${r.data.length} columns, the header has ${header.length}`);
    }
    const obj: Record<string, string> = {};
    header.forEach((h, i) => {
      if (h !== '') obj[h] = r.data[i] as string;
    });
    (b as RecordBuilder).add(obj, rowLine);
  }
  if (!b) throw new DatasetError('empty', file, null, 'file is empty');
  if (b.records.length === 0) throw new DatasetError('empty', file, null, 'no records (only a header row)');
  return finish(file, 'csv', b, opts.kind);
}

// ---------------------------------------------------------------------------------------------------
// Plain text (always language modelling)

class TxtSink implements LineSink {
  private readonly records: TextRecord[] = [];
  private cur: string[] = [];
  private start = 0;
  constructor(
    private readonly file: string,
    private readonly opts: ReadOptions,
  ) {
    if (opts.kind && opts.kind !== 'lm') {
      throw new DatasetError('mixed-kinds', file, null, `a .txt file holds ${KIND_NAME.lm}, not ${KIND_NAME[opts.kind]}`);
    }
  }

  private flush(): void {
    if (this.cur.length) this.records.push({ text: this.cur.join('\n'), line: this.start });
    this.cur = [];
  }

  line(raw: string, n: number): void {
    const l = raw.replace(/\r$/, '');
    if (this.opts.txtSplit === 'line') {
      if (l.trim() !== '') this.records.push({ text: l, line: n });
      return;
    }
    if (l.trim() === '') this.flush();
    else {
      if (!this.cur.length) this.start = n;
      this.cur.push(l);
    }
  }

  finish(): Dataset {
    this.flush();
    if (this.records.length === 0) throw new DatasetError('empty', this.file, null, 'file is empty');
    return { file: this.file, format: 'txt', kind: 'lm', records: this.records };
  }
}

function readTxt(text: string, file: string, opts: ReadOptions): Dataset {
  const sink = new TxtSink(file, opts);
  text.split('\n').forEach((l, i) => sink.line(l, i + 1));
  return sink.finish();
}

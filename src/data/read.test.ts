import { describe, expect, it } from 'vitest';
import { DatasetError, type DatasetErrorCode } from './errors';
import { formatFromFileName, parseDatasetText, readDataset } from './read';
import { DEFAULT_TEMPLATES } from './templates';
import { bytes } from './test-tokenizer';

function fails(fn: () => unknown, code: DatasetErrorCode, message: string | RegExp, line?: number | null): DatasetError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(DatasetError);
  const e = err as DatasetError;
  expect(e.code).toBe(code);
  if (typeof message === 'string') expect(e.message).toBe(message);
  else expect(e.message).toMatch(message);
  if (line !== undefined) expect(e.line).toBe(line);
  expect(e.name).toBe('DatasetError');
  return e;
}

const jsonl = (...lines: string[]) => bytes(lines.join('\n'));

describe('JSON Lines', () => {
  it('reads the three kinds, with 1-based lines, skipping blank lines and CRLF', () => {
    const lm = readDataset(jsonl('{"text":"hello"}', '', '{"text":"world"}\r'), 'a.jsonl');
    expect(lm.kind).toBe('lm');
    expect(lm.records).toEqual([
      { text: 'hello', line: 1 },
      { text: 'world', line: 3 },
    ]);
    const sft = readDataset(jsonl('{"prompt":"2+2=","answer":"4"}'), 'b.jsonl');
    expect(sft.kind).toBe('sft');
    expect(sft.records).toEqual([{ prompt: '2+2=', answer: '4', line: 1 }]);
    const mc = readDataset(jsonl('{"context":"Sky is","choices":["blue","green"],"label":0}'), 'c.jsonl');
    expect(mc.kind).toBe('mc');
    expect(mc.records).toEqual([{ context: 'Sky is', choices: ['blue', 'green'], label: 0, line: 1 }]);
  });

  it('strips a UTF-8 BOM and keeps non-ASCII text', () => {
    const b = new Uint8Array([0xef, 0xbb, 0xbf, ...bytes('{"text":"naïve 日本"}')]);
    expect(readDataset(b, 'x.jsonl').records[0]).toEqual({ text: 'naïve 日本', line: 1 });
  });

  it('empty file, whitespace-only file', () => {
    fails(() => readDataset(new Uint8Array(0), 'train.jsonl'), 'empty', 'train.jsonl: file is empty', null);
    fails(() => readDataset(bytes('\n  \n\n'), 'train.jsonl'), 'empty', 'train.jsonl: file is empty');
  });

  it('a line that is not JSON names file and line', () => {
    fails(
      () => readDataset(jsonl('{"text":"a"}', '{"text":"b"}', '{"text": oops}'), 'train.jsonl'),
      'bad-json',
      /^train\.jsonl line 3: not valid JSON/,
      3,
    );
    fails(
      () => readDataset(jsonl('[1,2]'), 'train.jsonl'),
      'bad-json',
      /^train\.jsonl line 1: expected a JSON object, got array \(JSON Lines needs/,
    );
    fails(
      () => readDataset(jsonl('{"text":"a"}', '"str"'), 'train.jsonl'),
      'bad-json',
      'train.jsonl line 2: expected a JSON object, got string',
    );
    const long = `{"text": ${'x'.repeat(5000)}}`;
    const e = fails(() => readDataset(jsonl(long), 'train.jsonl'), 'bad-json', /not valid JSON/);
    expect(e.message.length).toBeLessThan(250);
  });

  it('a record missing a field', () => {
    const lines = Array.from({ length: 6 }, (_, i) => `{"prompt":"p${i}","answer":"a${i}"}`);
    lines.push('{"prompt":"p7"}');
    fails(() => readDataset(jsonl(...lines), 'train.jsonl'), 'missing-field', 'train.jsonl line 7: missing field "answer"', 7);
    fails(
      () => readDataset(jsonl('{"context":"c","choices":["x","y"]}'), 'mc.jsonl'),
      'missing-field',
      'mc.jsonl line 1: missing field "label"',
    );
  });

  it('wrong types', () => {
    fails(() => readDataset(jsonl('{"text":5}'), 't.jsonl'), 'bad-type', 't.jsonl line 1: field "text" must be a string, got number');
    fails(
      () => readDataset(jsonl('{"context":"c","choices":"x","label":0}'), 't.jsonl'),
      'bad-type',
      't.jsonl line 1: field "choices" must be an array of strings, got string',
    );
    fails(
      () => readDataset(jsonl('{"context":"c","choices":["x",3],"label":0}'), 't.jsonl'),
      'bad-type',
      't.jsonl line 1: choice 1 must be a string, got number',
    );
    fails(
      () => readDataset(jsonl('{"context":"c","choices":["x","y"],"label":"1"}'), 't.jsonl'),
      'bad-type',
      /label" must be an integer index, got string/,
    );
    fails(() => readDataset(jsonl('{"context":"c","choices":["x","y"],"label":0.5}'), 't.jsonl'), 'bad-type', /got 0.5/);
    fails(() => readDataset(jsonl('{"context":"c","choices":["x"," "],"label":0}'), 't.jsonl'), 'bad-value', /choice 1 is empty/);
    fails(() => readDataset(jsonl('{"context":"c","choices":["x"],"label":0}'), 't.jsonl'), 'bad-value', /at least 2 choices/);
  });

  it('label out of range', () => {
    fails(
      () =>
        readDataset(jsonl('{"context":"c","choices":["a","b"],"label":1}', '{"context":"c","choices":["a","b"],"label":2}'), 'mc.jsonl'),
      'label-out-of-range',
      'mc.jsonl line 2: label 2 is out of range for 2 choices (0..1)',
      2,
    );
    fails(() => readDataset(jsonl('{"context":"c","choices":["a","b"],"label":-1}'), 'mc.jsonl'), 'label-out-of-range', /label -1/);
  });

  it('mixed kinds are rejected, naming the first record', () => {
    fails(
      () => readDataset(jsonl('{"text":"a"}', '{"prompt":"p","answer":"a"}'), 'm.jsonl'),
      'mixed-kinds',
      /^m\.jsonl line 2: record is prompt\/answer .* but the file's first record \(line 1\) is language-modelling text/,
      2,
    );
    fails(
      () => readDataset(jsonl('{"text":"a"}'), 'm.jsonl', { kind: 'sft' }),
      'mixed-kinds',
      /^m\.jsonl line 1: record is language-modelling .* but prompt\/answer .* is required$/,
    );
    fails(
      () => readDataset(jsonl('{"prompt":"a"}'), 'm.jsonl', { kind: 'sft' }),
      'missing-field',
      'm.jsonl line 1: missing field "answer"',
    );
  });

  it('unknown record shape', () => {
    fails(() => readDataset(jsonl('{"foo":1}'), 'u.jsonl'), 'unknown-kind', /u\.jsonl line 1: cannot tell the record kind.*found "foo"/);
  });

  it('field mapping and templates', () => {
    const ds = readDataset(jsonl('{"q":"Capital of France?","a":"Paris"}'), 'q.jsonl', { fields: { prompt: 'q', answer: 'a' } });
    expect(ds.records).toEqual([{ prompt: 'Capital of France?', answer: 'Paris', line: 1 }]);
    fails(
      () => readDataset(jsonl('{"q":"x"}'), 'q.jsonl', { fields: { prompt: 'q', answer: 'a' } }),
      'missing-field',
      'q.jsonl line 1: missing field "a"',
    );
    const t = readDataset(jsonl('{"question":"2+2?","answer":4}'), 'q.jsonl', { template: DEFAULT_TEMPLATES.questionAnswer });
    expect(t.records).toEqual([{ prompt: 'Question: 2+2?\nAnswer:', answer: ' 4', line: 1 }]);
    fails(
      () => readDataset(jsonl('{"question":"x"}'), 'q.jsonl', { template: DEFAULT_TEMPLATES.questionAnswer }),
      'missing-field',
      'q.jsonl line 1: missing field "answer"',
    );
  });

  it('non-UTF-8 bytes give the line of the first bad byte', () => {
    const good = bytes('{"text":"ok"}\n{"text":"caf');
    const b = new Uint8Array([...good, 0xe9, ...bytes('"}\n')]); // Latin-1 "é"
    const e = fails(
      () => readDataset(b, 'latin1.jsonl'),
      'not-utf8',
      /^latin1\.jsonl line 2: text is not valid UTF-8 \(byte 0xe9 at offset 26\)/,
      2,
    );
    expect(e.file).toBe('latin1.jsonl');
    const utf16 = new Uint8Array([0xff, 0xfe, 0x7b, 0x00]);
    fails(() => readDataset(utf16, 'w.jsonl'), 'not-utf8', /looks like UTF-16/);
  });
});

describe('CSV', () => {
  it('RFC 4180 quoting: commas, doubled quotes and newlines inside quoted cells; lines stay right', () => {
    const csv = 'prompt,answer\n"Hello, world","say ""hi"""\n"line one\nline two",x\n\nlast,y\n';
    const ds = readDataset(bytes(csv), 'd.csv');
    expect(ds.kind).toBe('sft');
    expect(ds.records).toEqual([
      { prompt: 'Hello, world', answer: 'say "hi"', line: 2 },
      { prompt: 'line one\nline two', answer: 'x', line: 3 },
      { prompt: 'last', answer: 'y', line: 6 },
    ]);
  });

  it('CRLF line endings and a header with spaces', () => {
    const ds = readDataset(bytes(' text \r\n"a,b"\r\nc\r\n'), 'd.csv');
    expect(ds.records).toEqual([
      { text: 'a,b', line: 2 },
      { text: 'c', line: 3 },
    ]);
  });

  it('errors name the line: wrong column count, unterminated quote, missing column, bad label', () => {
    fails(
      () => readDataset(bytes('prompt,answer\na,b\nc,d,e\n'), 'd.csv'),
      'bad-csv',
      'd.csv line 3: CSV row has 3 columns, the header has 2',
      3,
    );
    fails(() => readDataset(bytes('prompt,answer\na,b\n"c,d\n'), 'd.csv'), 'bad-csv', /^d\.csv line 3: CSV: Quoted field unterminated/, 3);
    fails(() => readDataset(bytes('prompt,other\na,b\n'), 'd.csv'), 'missing-field', 'd.csv line 2: missing field "answer"', 2);
    fails(() => readDataset(bytes('a,a\n1,2\n'), 'd.csv'), 'bad-csv', /repeats column "a"/);
    fails(() => readDataset(bytes('prompt,answer\n'), 'd.csv'), 'empty', 'd.csv: no records (only a header row)');
  });

  it('multiple choice from a JSON-array cell or from A..D columns with letter labels', () => {
    const a = readDataset(bytes('context,choices,label\nSky is,"[""blue"",""green""]",0\n'), 'm.csv');
    expect(a.records).toEqual([{ context: 'Sky is', choices: ['blue', 'green'], label: 0, line: 2 }]);
    const b = readDataset(bytes('context,A,B,C,label\nq1,x,y,z,C\nq2,x,y,z,1\n'), 'm.csv');
    expect(b.kind).toBe('mc');
    expect(b.records.map((r) => ('label' in r ? r.label : -1))).toEqual([2, 1]);
    fails(
      () => readDataset(bytes('context,A,B,label\nq,x,y,4\n'), 'm.csv'),
      'label-out-of-range',
      'm.csv line 2: label 4 is out of range for 2 choices (0..1)',
    );
    fails(() => readDataset(bytes('context,A,B,label\nq,x,y,maybe\n'), 'm.csv'), 'bad-type', /got "maybe"/);
    fails(() => readDataset(bytes('context,choices,label\nq,not json,0\n'), 'm.csv'), 'bad-type', /JSON array of strings/);
  });

  it('column mapping and templates over CSV columns', () => {
    const ds = readDataset(bytes('q,a\nHi?,Yes\n'), 'm.csv', { fields: { prompt: 'q', answer: 'a' } });
    expect(ds.records).toEqual([{ prompt: 'Hi?', answer: 'Yes', line: 2 }]);
    const mc = readDataset(bytes('question,A,B,C,D,label\nWhat?,w,x,y,z,B\n'), 'm.csv', { template: DEFAULT_TEMPLATES.questionABCD });
    expect(mc.records).toEqual([{ context: 'Question: What?\nAnswer:', choices: ['w', 'x', 'y', 'z'], label: 1, line: 2 }]);
    const byText = readDataset(bytes('q,c1,c2,gold\nWhat?,cat,dog,dog\n'), 'm.csv', {
      template: { kind: 'mc', context: '{q}', choices: ['{c1}', '{c2}'], label: '{gold}' },
    });
    expect(byText.records[0]).toMatchObject({ label: 1 });
  });

  it('TSV by extension', () => {
    const ds = readDataset(bytes('prompt\tanswer\na,b\tc\n'), 'd.tsv');
    expect(ds.records).toEqual([{ prompt: 'a,b', answer: 'c', line: 2 }]);
  });
});

describe('TXT', () => {
  const txt = 'First doc\nstill first\n\n\nSecond doc\r\n\r\nThird\n';
  it('blank-line separated documents (default)', () => {
    const ds = readDataset(bytes(txt), 'c.txt');
    expect(ds.records).toEqual([
      { text: 'First doc\nstill first', line: 1 },
      { text: 'Second doc', line: 5 },
      { text: 'Third', line: 7 },
    ]);
  });
  it('one document per line', () => {
    const ds = readDataset(bytes(txt), 'c.txt', { txtSplit: 'line' });
    expect(ds.records.map((r) => ('text' in r ? r.text : ''))).toEqual(['First doc', 'still first', 'Second doc', 'Third']);
  });
  it('txt cannot be another kind', () => {
    fails(() => readDataset(bytes('x'), 'c.txt', { kind: 'mc' }), 'mixed-kinds', /\.txt file holds language-modelling/);
  });
});

describe('formats', () => {
  it('from extension, and unknown', () => {
    expect(formatFromFileName('A.JSONL')).toBe('jsonl');
    expect(formatFromFileName('x.ndjson')).toBe('jsonl');
    expect(formatFromFileName('x.tsv')).toBe('csv');
    expect(formatFromFileName('x.parquet')).toBeNull();
    fails(() => readDataset(bytes('x'), 'data.parquet'), 'unknown-format', /^data\.parquet: unknown file type/);
    expect(readDataset(bytes('{"text":"a"}'), 'data', { format: 'jsonl' }).kind).toBe('lm');
    expect(parseDatasetText('{"text":"a"}', 'pasted.jsonl').records).toHaveLength(1);
  });
});

describe('Blob input', () => {
  it('reads a Blob (browser File) like bytes', async () => {
    const { readDatasetBlob } = await import('./read');
    const ds = await readDatasetBlob(new Blob(['{"text":"hi"}\n']), 'f.jsonl');
    expect(ds.records).toEqual([{ text: 'hi', line: 1 }]);
  });
});

/**
 * `{field}` templates that turn arbitrary rows (CSV columns, JSON objects with other field names) into
 * the three record kinds. Syntax: `{name}` inserts field `name`; `{{` and `}}` are literal braces.
 * A field referenced but absent from the row is an error (never silently an empty string), because a
 * misspelt column would otherwise train on prompts with holes in them.
 *
 * Value rules: strings are inserted as they are, numbers and booleans via String(), null/undefined
 * count as missing, arrays and objects as JSON. A template that is exactly one `{name}` yields the raw
 * value, which is how `choices: '{choices}'` picks up a JSON array (or a CSV cell holding one).
 */

export interface TextTemplate {
  kind: 'lm';
  text: string;
}

export interface PromptTemplate {
  kind: 'sft';
  prompt: string;
  answer: string;
}

export interface ChoiceTemplate {
  kind: 'mc';
  context: string;
  /** One template naming a list-valued field (`'{choices}'`), or one template per choice. */
  choices: string | string[];
  /**
   * Renders to the correct choice: an integer index (`"2"`), a letter `A`..`Z` (index from `A`), or
   * the exact text of one of the rendered choices.
   */
  label: string;
}

export type RecordTemplate = TextTemplate | PromptTemplate | ChoiceTemplate;

/**
 * Documented defaults. `identity*` read our own JSON Lines field names; the others are common shapes.
 * The leading space on answers matters for BPE tokenizers (GPT-2 encodes " Paris" as one token, and
 * "Paris" after "Answer:" as two): it puts the word boundary inside the answer, where the model was
 * pretrained to see it.
 */
export const DEFAULT_TEMPLATES = {
  identityText: { kind: 'lm', text: '{text}' },
  identityPrompt: { kind: 'sft', prompt: '{prompt}', answer: '{answer}' },
  identityChoice: { kind: 'mc', context: '{context}', choices: '{choices}', label: '{label}' },
  /** question/answer columns → "Question: …\nAnswer:" + " answer". */
  questionAnswer: { kind: 'sft', prompt: 'Question: {question}\nAnswer:', answer: ' {answer}' },
  /** instruction/input/output (Alpaca-like) columns. */
  instruction: {
    kind: 'sft',
    prompt: '{instruction}\n\n{input}\n\nResponse:',
    answer: ' {output}',
  },
  /** question + A..D columns + letter or index label → lm-eval-style "Question: …\nAnswer:". */
  questionABCD: {
    kind: 'mc',
    context: 'Question: {question}\nAnswer:',
    choices: ['{A}', '{B}', '{C}', '{D}'],
    label: '{label}',
  },
} as const satisfies Record<string, RecordTemplate>;

/** Thrown by the renderer; the readers turn it into a DatasetError with file and line. */
export class TemplateError extends Error {
  override readonly name = 'TemplateError';
  constructor(
    readonly kind: 'missing-field' | 'syntax',
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

type Part = { lit: string } | { field: string };

function parseTemplate(tpl: string): Part[] {
  const parts: Part[] = [];
  let lit = '';
  for (let i = 0; i < tpl.length; i++) {
    const c = tpl[i];
    if (c === '{' && tpl[i + 1] === '{') {
      lit += '{';
      i++;
    } else if (c === '}' && tpl[i + 1] === '}') {
      lit += '}';
      i++;
    } else if (c === '{') {
      const end = tpl.indexOf('}', i + 1);
      if (end < 0) throw new TemplateError('syntax', '', `template ${JSON.stringify(tpl)}: unclosed "{"`);
      const field = tpl.slice(i + 1, end).trim();
      if (field === '' || field.includes('{')) {
        throw new TemplateError('syntax', field, `template ${JSON.stringify(tpl)}: bad field name`);
      }
      if (lit) parts.push({ lit });
      lit = '';
      parts.push({ field });
      i = end;
    } else if (c === '}') {
      throw new TemplateError('syntax', '', `template ${JSON.stringify(tpl)}: unmatched "}" (write "}}")`);
    } else {
      lit += c;
    }
  }
  if (lit) parts.push({ lit });
  return parts;
}

/** Names of the fields a template references, in order of first use. */
export function templateFields(tpl: string): string[] {
  const out: string[] = [];
  for (const p of parseTemplate(tpl)) if ('field' in p && !out.includes(p.field)) out.push(p.field);
  return out;
}

function lookup(row: Readonly<Record<string, unknown>>, field: string): unknown {
  const v = Object.hasOwn(row, field) ? row[field] : undefined;
  if (v === undefined || v === null) throw new TemplateError('missing-field', field, `missing field "${field}"`);
  return v;
}

function stringify(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

/** Renders a template to a string. */
export function renderTemplate(tpl: string, row: Readonly<Record<string, unknown>>): string {
  let out = '';
  for (const p of parseTemplate(tpl)) out += 'lit' in p ? p.lit : stringify(lookup(row, p.field));
  return out;
}

/** Like renderTemplate, but a template that is exactly `{field}` returns the field's raw value. */
export function resolveTemplate(tpl: string, row: Readonly<Record<string, unknown>>): unknown {
  const parts = parseTemplate(tpl);
  const only = parts.length === 1 ? parts[0] : undefined;
  if (only && 'field' in only) return lookup(row, only.field);
  return renderTemplate(tpl, row);
}

import { readFileSync, readdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AutoTokenizer, env } from '@huggingface/transformers';
import { beforeAll, describe, expect, it } from 'vitest';
import { encodeChoices, encodePromptAnswer } from './batch';
import { readDataset } from './read';
import { IGNORE_INDEX, type TextTokenizer } from './types';
import { validateDataset } from './validate';

/**
 * The shipped demo tasks (public/data) through the real demo tokenizer (byte-level BPE, loaded by
 * transformers.js from local files): every file reads, validates and encodes at the demo model's context
 * (256), and the scored tokens decode back to exactly the choice / answer text.
 */
const here = dirname(fileURLToPath(import.meta.url));
const publicDir = resolve(here, '../../public');
const CONTEXT = 256; // public/models/demo/config.json max_position_embeddings

let tok: TextTokenizer;

beforeAll(async () => {
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = resolve(publicDir, 'models') + '/';
  const t = await AutoTokenizer.from_pretrained('demo');
  const eos = 4095;
  tok = {
    encode: (s) => t.encode(s, { add_special_tokens: false }),
    decode: (ids) => t.decode(ids, { skip_special_tokens: false }),
    eosId: eos,
    bosId: eos,
    vocabSize: 4096,
  };
}, 60_000);

const tasks = readdirSync(resolve(publicDir, 'data')).sort();

describe('demo task data with the demo tokenizer', () => {
  for (const task of tasks) {
    it(task, () => {
      for (const split of ['train', 'valid', 'test']) {
        const file = `${split}.jsonl`;
        const ds = readDataset(new Uint8Array(readFileSync(resolve(publicDir, 'data', task, file))), file);
        const summary = validateDataset(ds, { tokenizer: tok, contextLength: CONTEXT, maxTokenized: 300 });
        expect(summary.tokens?.tooLong).toBe(0);
        if (ds.kind === 'mc') {
          const sample = { ...ds, records: ds.records.slice(0, 60) };
          const { examples } = encodeChoices(sample, tok, { contextLength: CONTEXT });
          for (const ex of examples) {
            const r = sample.records[ex.example];
            const scored = ex.targets.slice(ex.span[0], ex.span[1]);
            expect(scored.every((t) => t !== IGNORE_INDEX)).toBe(true);
            expect(tok.decode(scored)).toBe(r?.choices[ex.choice]);
            expect(ex.ids.length).toBeLessThanOrEqual(CONTEXT);
          }
        } else if (ds.kind === 'sft') {
          const sample = { ...ds, records: ds.records.slice(0, 60) };
          const { examples } = encodePromptAnswer(sample, tok, { contextLength: CONTEXT });
          examples.forEach((ex, i) => {
            const kept = ex.targets.filter((t) => t !== IGNORE_INDEX);
            expect(tok.decode(kept)).toBe(`${sample.records[i]?.answer}<|endoftext|>`);
            expect(ex.ids.length).toBeLessThanOrEqual(CONTEXT);
          });
        }
      }
    });
  }
});

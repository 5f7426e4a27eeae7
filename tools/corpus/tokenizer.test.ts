// The demo model's BPE is trained by our own Python trainer (tools/corpus/bpe.py). This checks that
// @huggingface/transformers, loading public/models/demo/ from local files exactly as it would load a
// user's checkpoint, produces the same ids as the Python encoder that tokenised the pretraining
// corpus, and that decoding round-trips the text byte for byte.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AutoTokenizer, env } from '@huggingface/transformers';

const here = dirname(fileURLToPath(import.meta.url));
const modelsDir = resolve(here, '../../public/models');

interface FixtureLine {
  text: string;
  ids: number[];
}

const fixture = JSON.parse(readFileSync(resolve(here, 'tokenizer_fixture.json'), 'utf8')) as FixtureLine[];

async function loadDemoTokenizer() {
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = modelsDir + '/';
  return AutoTokenizer.from_pretrained('demo');
}

describe('demo tokenizer (public/models/demo/tokenizer.json)', () => {
  it('has the GPT-2 byte-level BPE layout with a 4096 vocabulary', () => {
    const tj = JSON.parse(readFileSync(resolve(modelsDir, 'demo/tokenizer.json'), 'utf8'));
    expect(tj.model.type).toBe('BPE');
    expect(tj.pre_tokenizer.type).toBe('ByteLevel');
    expect(tj.decoder.type).toBe('ByteLevel');
    const size = Object.keys(tj.model.vocab).length;
    expect(size).toBe(4096);
    expect(tj.model.vocab['<|endoftext|>']).toBe(4095);
    const cfg = JSON.parse(readFileSync(resolve(modelsDir, 'demo/config.json'), 'utf8'));
    expect(cfg.vocab_size).toBe(size);
    expect(cfg.eos_token_id).toBe(4095);
  });

  it('encodes corpus and task lines to exactly the Python encoder ids', async () => {
    const tok = await loadDemoTokenizer();
    expect(fixture.length).toBeGreaterThan(300);
    let mismatches = 0;
    for (const { text, ids } of fixture) {
      const got = tok.encode(text, { add_special_tokens: false });
      if (JSON.stringify(got) !== JSON.stringify(ids)) mismatches++;
    }
    expect(mismatches).toBe(0);
  });

  it('decodes back to the original text and keeps <|endoftext|> as one token', async () => {
    const tok = await loadDemoTokenizer();
    for (const { text, ids } of fixture) expect(tok.decode(ids)).toBe(text);
    const ids = tok.encode('The end.<|endoftext|>Call me Ishmael.', { add_special_tokens: false });
    expect(ids.filter((i: number) => i === 4095)).toHaveLength(1);
    expect(tok.decode(ids)).toBe('The end.<|endoftext|>Call me Ishmael.');
  });
});

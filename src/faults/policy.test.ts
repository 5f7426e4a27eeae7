import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import viteConfig, { CONTENT_SECURITY_POLICY, SECURITY_HEADERS } from '../../vite.config';
import { loadTokenizer } from '../model/tokenizer';
import { nodeDirSource } from '../model/source';

const root = join(__dirname, '../..');

describe('one security policy, everywhere it is served', () => {
  it('index.html <meta>, the dev/preview server headers and the service worker carry the same policy', () => {
    const html = readFileSync(join(root, 'index.html'), 'utf8');
    const meta = /<meta http-equiv="Content-Security-Policy" content="([^"]+)"/.exec(html)?.[1];
    expect(meta).toBe(CONTENT_SECURITY_POLICY);
    expect(CONTENT_SECURITY_POLICY).toMatch(/connect-src 'self' blob: data:;/);
    const cfg = viteConfig as { server?: { headers?: Record<string, string> }; preview?: { headers?: Record<string, string> } };
    expect(cfg.server?.headers).toEqual(SECURITY_HEADERS);
    expect(cfg.preview?.headers).toEqual(SECURITY_HEADERS);
    const sw = readFileSync(join(root, 'public/sw.js'), 'utf8');
    const literal = /const HEADERS = (\{[\s\S]*?\n\});/.exec(sw)?.[1];
    expect(literal).toBeTruthy();
    const headers = new Function(`return ${literal};`)() as Record<string, string>;
    expect(headers).toEqual(SECURITY_HEADERS);
    expect(SECURITY_HEADERS['Cross-Origin-Opener-Policy']).toBe('same-origin');
    expect(SECURITY_HEADERS['Cross-Origin-Embedder-Policy']).toBe('require-corp');
  });

  it('the service worker registration is relative to the page (works under any sub-path)', () => {
    const src = readFileSync(join(__dirname, 'isolation.ts'), 'utf8');
    expect(src).toMatch(/new URL\('sw\.js', document\.baseURI\)/);
    expect(readFileSync(join(root, 'src/main.tsx'), 'utf8')).toMatch(/ensureIsolation\(\)/);
  });

  it('loading a local tokenizer leaves transformers.js remote model loading off', async () => {
    const tf = await import('@huggingface/transformers');
    tf.env.allowRemoteModels = true;
    await loadTokenizer(nodeDirSource(join(root, 'public/models/demo')));
    expect(tf.env.allowRemoteModels).toBe(false);
  });
});

/**
 * Builds the large bad inputs of big-inputs.sh cheaply (streamed; nothing near their expanded size is
 * held in memory): `npx tsx tools/faults/make-inputs.ts DIR`.
 */
import { createWriteStream, mkdirSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDeflateRaw } from 'node:zlib';
import { once } from 'node:events';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const out = resolve(process.argv[2] ?? 'fault-inputs');
mkdirSync(out, { recursive: true });

/** One-entry deflate zip entry bytes (local header + data), central record and sizes. */
function zip(entries: { name: string; data: Uint8Array; size: number; method: number }[]): Uint8Array {
  const parts: Uint8Array[] = [];
  const cen: Uint8Array[] = [];
  let off = 0;
  for (const e of entries) {
    const nb = new TextEncoder().encode(e.name);
    const loc = new Uint8Array(30 + nb.length);
    const l = new DataView(loc.buffer);
    l.setUint32(0, 0x04034b50, true);
    l.setUint16(4, 20, true);
    l.setUint16(8, e.method, true);
    l.setUint32(18, e.data.length, true);
    l.setUint32(22, e.size, true);
    l.setUint16(26, nb.length, true);
    loc.set(nb, 30);
    const c = new Uint8Array(46 + nb.length);
    const d = new DataView(c.buffer);
    d.setUint32(0, 0x02014b50, true);
    d.setUint16(4, 20, true);
    d.setUint16(6, 20, true);
    d.setUint16(10, e.method, true);
    d.setUint32(20, e.data.length, true);
    d.setUint32(24, e.size, true);
    d.setUint16(28, nb.length, true);
    d.setUint32(42, off, true);
    c.set(nb, 46);
    parts.push(loc, e.data);
    cen.push(c);
    off += loc.length + e.data.length;
  }
  const cenLen = cen.reduce((s, c) => s + c.length, 0);
  const eocd = new Uint8Array(22);
  const v = new DataView(eocd.buffer);
  v.setUint32(0, 0x06054b50, true);
  v.setUint16(8, entries.length, true);
  v.setUint16(10, entries.length, true);
  v.setUint32(12, cenLen, true);
  v.setUint32(16, off, true);
  const all = [...parts, ...cen, eocd];
  const buf = new Uint8Array(all.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of all) buf.set(p, o), (o += p.length);
  return buf;
}

async function deflateZeros(n: number): Promise<Uint8Array> {
  const z = createDeflateRaw({ level: 9 });
  const chunks: Buffer[] = [];
  z.on('data', (c: Buffer) => chunks.push(c));
  const zero = Buffer.alloc(1 << 20);
  for (let left = n; left > 0; left -= zero.length) {
    if (!z.write(left >= zero.length ? zero : zero.subarray(0, left))) await once(z, 'drain');
  }
  z.end();
  await once(z, 'end');
  return new Uint8Array(Buffer.concat(chunks));
}

async function main(): Promise<void> {
  // 1. Zip bomb: an emulator package whose weights expand to 3 GiB (honest sizes) and one that lies.
  const G3 = 3 * 2 ** 30;
  const zeros = await deflateZeros(G3);
  const json = new TextEncoder().encode('{"format":"gradot-emulator","version":1}');
  writeFileSync(
    join(out, 'bomb.zip'),
    zip([
      { name: 'emulator.json', data: json, size: json.length, method: 0 },
      { name: 'emulator.safetensors', data: zeros, size: G3, method: 8 },
    ]),
  );
  writeFileSync(
    join(out, 'liar.zip'),
    zip([
      { name: 'emulator.json', data: json, size: json.length, method: 0 },
      { name: 'emulator.safetensors', data: zeros, size: 1000, method: 8 },
    ]),
  );
  // 2. config.json with num_hidden_layers 1e9 (the gpt2 fixture's weights).
  const fx = join(repo, 'src/model/__fixtures__/gpt2');
  for (const [name, key] of [['layers-1e9', 'n_layer']] as const) {
    mkdirSync(join(out, name), { recursive: true });
    const cfg = JSON.parse(readFileSync(join(fx, 'config.json'), 'utf8'));
    cfg[key] = 1e9;
    writeFileSync(join(out, name, 'config.json'), JSON.stringify(cfg));
    copyFileSync(join(fx, 'model.safetensors'), join(out, name, 'model.safetensors'));
  }
  // 3. A safetensors header of 1.4 M zero-size entries (next to the fixture's config).
  mkdirSync(join(out, 'many-entries'), { recursive: true });
  copyFileSync(join(fx, 'config.json'), join(out, 'many-entries', 'config.json'));
  const parts: string[] = ['{'];
  for (let i = 0; i < 1_400_000; i++) parts.push(`${i ? ',' : ''}"t${i}":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`);
  parts.push('}');
  const h = Buffer.from(parts.join(''));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  writeFileSync(join(out, 'many-entries', 'model.safetensors'), Buffer.concat([len, h]));
  // 4. A 100 MB JSONL on one line, and a 600 MB valid-ASCII JSONL (many lines).
  const one = createWriteStream(join(out, 'oneline.jsonl'));
  one.write('{"text": "');
  const a = Buffer.alloc(1 << 20, 0x61);
  for (let i = 0; i < 100; i++) if (!one.write(a)) await once(one, 'drain');
  one.end('"}\n');
  await once(one, 'finish');
  const big = createWriteStream(join(out, 'ascii-600mb.jsonl'));
  const line = Buffer.from(`{"text": "${'lorem ipsum dolor sit amet '.repeat(37)}"}\n`);
  const block = Buffer.concat(Array.from({ length: 1024 }, () => line));
  for (let w = 0; w < 600 * 2 ** 20; w += block.length) if (!big.write(block)) await once(big, 'drain');
  big.end();
  await once(big, 'finish');
  console.log(`inputs in ${out}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

/**
 * Top-level keys of a JSON object text, in order, duplicates included. `JSON.parse` keeps the last of a
 * repeated key silently, which for a safetensors header means a tensor name listed twice loads whichever
 * entry came last; this linear scan (no allocation per value) lets the caller refuse that, and count
 * entries before parsing anything.
 */
export function topLevelKeys(text: string, onKey: (key: string, index: number) => void): void {
  let depth = 0;
  let i = 0;
  let index = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      i++;
      let escaped = false;
      while (i < n) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) {
          escaped = true;
          i += 2;
          continue;
        }
        if (d === 0x22) break;
        i++;
      }
      const end = i; // closing quote
      i++;
      if (depth === 1) {
        let j = i;
        while (
          j < n &&
          (text.charCodeAt(j) === 0x20 || text.charCodeAt(j) === 0x0a || text.charCodeAt(j) === 0x0d || text.charCodeAt(j) === 0x09)
        )
          j++;
        if (text.charCodeAt(j) === 0x3a /* : */) {
          const raw = text.slice(start, end + 1);
          let key = raw.slice(1, -1);
          if (escaped) {
            try {
              key = JSON.parse(raw) as string;
            } catch {
              /* malformed: JSON.parse of the whole text reports it */
            }
          }
          onKey(key, index++);
        }
      }
      continue;
    }
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) depth++;
    else if (c === 0x7d /* } */ || c === 0x5d /* ] */) depth--;
    i++;
  }
}

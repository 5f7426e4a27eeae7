/**
 * Input/output names of the exported decoder graph (Optimum's, which transformers.js looks for). Kept apart
 * from export.ts so browser code that only runs graphs does not pull in the protobuf encoder.
 */

/** Names of the graph's KV-cache inputs/outputs, layer by layer. */
export function cacheNames(numLayers: number): { past: string[]; present: string[] } {
  const past: string[] = [];
  const present: string[] = [];
  for (let i = 0; i < numLayers; i++) {
    past.push(`past_key_values.${i}.key`, `past_key_values.${i}.value`);
    present.push(`present.${i}.key`, `present.${i}.value`);
  }
  return { past, present };
}

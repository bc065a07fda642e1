// Compare two policy checkpoint folders: every adapter tensor within a tolerance (default 1e-6).
// Exit 0 when they agree; prints the largest difference. Uses the built CLI's reader (dist/).
//   node examples/slurm/compare-policies.mjs A/policy B/policy [tolerance]
import { join } from 'node:path';

const [a, b, tol = '1e-6'] = process.argv.slice(2);
const root = new URL('../..', import.meta.url).pathname;
const { readSafetensors } = await import(join(root, 'dist/shards/safetensors.js'));
const ta = readSafetensors(join(a, 'adapter_model.safetensors')).tensors;
const tb = readSafetensors(join(b, 'adapter_model.safetensors')).tensors;
let worst = 0;
let fault = '';
for (const [name, t] of ta) {
  const u = tb.get(name);
  if (!u || u.data.length !== t.data.length) fault ||= `tensor ${name} missing or of another size in ${b}`;
  else for (let i = 0; i < t.data.length; i++) worst = Math.max(worst, Math.abs(t.data[i] - u.data[i]));
}
if (ta.size !== tb.size) fault ||= `${ta.size} tensors in ${a}, ${tb.size} in ${b}`;
console.log(`largest difference ${worst.toExponential(3)} over ${ta.size} tensors`);
if (fault || !(worst <= Number(tol))) {
  console.error(fault || `policies differ by more than ${tol}`);
  process.exit(1);
}

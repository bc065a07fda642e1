/**
 * The gradient of every ONNX backend node test whose operators all have a rule, against central
 * finite differences (conformance.ts). A test that cannot be judged is on the committed list
 * conformance-not-judgeable.json with its reason; a failure not on it, a listed test that now
 * passes, or a longer list fails this test. Skipped where Debian's libonnx-testdata is missing
 * (.ci/run installs it, so CI always runs it).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { candidates, judge, NODE_TESTS } from './conformance.js';

/** The list may shrink, never grow (except by tests of operators that newly get a rule); and this many judged tests must pass. */
const MAX_NOT_JUDGEABLE = 99;
const MIN_PASSED = 441;

const listed: Record<string, string> = JSON.parse(
  readFileSync(new URL('./conformance-not-judgeable.json', import.meta.url), 'utf8'),
);

test('ONNX backend node tests: gradients match finite differences', {
  skip: !existsSync(NODE_TESTS) && `no ${NODE_TESTS} (apt-get install libonnx-testdata)`,
}, async (t) => {
  assert.ok(Object.keys(listed).length <= MAX_NOT_JUDGEABLE, 'the not-judgeable list grew');
  const names = candidates();
  const failed: Record<string, string> = {};
  let passed = 0;
  for (const d of names) {
    const o = await judge(join(NODE_TESTS, d));
    if (o.status === 'pass') passed++;
    else failed[d] = o.reason;
  }
  const unexpected = Object.entries(failed).filter(([d]) => !listed[d]);
  assert.deepEqual(unexpected, [], 'judgeable node tests whose gradient check failed');
  const nowPass = Object.keys(listed).filter((d) => names.includes(d) && !failed[d]);
  assert.deepEqual(nowPass, [], 'listed as not judgeable but passing: remove them from the list');
  const unknown = Object.keys(listed).filter((d) => !names.includes(d));
  assert.deepEqual(unknown, [], 'listed but not a candidate node test');
  const reasons = new Map<string, number>();
  for (const d of Object.keys(failed)) {
    const r = listed[d] ?? '';
    reasons.set(r, (reasons.get(r) ?? 0) + 1);
  }
  t.diagnostic(
    `node tests with rules: ${names.length}; judged: ${passed} (all passed); not judgeable: ${Object.keys(failed).length}`,
  );
  for (const [r, k] of [...reasons].sort((a, b) => b[1] - a[1])) t.diagnostic(`  ${k} × ${r}`);
  assert.ok(passed >= MIN_PASSED, `only ${passed} node tests passed (at least ${MIN_PASSED} did)`);
});

/**
 * The gradient of every ONNX backend node test whose operators all have a rule, against central
 * finite differences (conformance.ts). A test that cannot be judged is on the committed list
 * conformance-not-judgeable.json with its reason; a failure not on it, a listed test that now
 * passes, or a longer list fails this test. The same tests down-converted to opsets 12, 10 and 8
 * by python3-onnx's version_converter (where it can) are judged the same way. Skipped where
 * Debian's libonnx-testdata or python3-onnx is missing (.ci/run installs both, so CI runs them).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { torchMissing } from '../../bench/autodiff.js';
import { skipOutsideCi } from '../helpers.js';
import { candidates, downConvert, judge, NODE_TESTS } from './conformance.js';

/** The list may shrink, never grow (except by tests of operators that newly get a rule); and this many judged tests must pass. */
const MAX_NOT_JUDGEABLE = 93;
const MIN_PASSED = 476;
/** Of those, this many read shape, axes, index or condition inputs fed at run time. */
const MIN_FED_AT_RUN_TIME = 117;
/** Down-converted to opsets 12, 10 and 8 (what onnx 1.12's version_converter can do). */
const MIN_PASSED_DOWN = 62;

const listed: Record<string, string> = JSON.parse(
  readFileSync(new URL('./conformance-not-judgeable.json', import.meta.url), 'utf8'),
);

test('ONNX backend node tests: gradients match finite differences', {
  skip: skipOutsideCi(!existsSync(NODE_TESTS) && `no ${NODE_TESTS} (apt-get install libonnx-testdata)`),
}, async (t) => {
  assert.ok(Object.keys(listed).length <= MAX_NOT_JUDGEABLE, 'the not-judgeable list grew');
  const names = candidates();
  const failed: Record<string, string> = {};
  let passed = 0;
  let fed = 0;
  for (const d of names) {
    const o = await judge(join(NODE_TESTS, d));
    if (o.status === 'pass') {
      passed++;
      if (o.fedAtRunTime) fed++;
    } else failed[d] = o.reason;
  }
  const unexpected = Object.entries(failed).filter(([d]) => !listed[d]);
  assert.deepEqual(unexpected, [], 'judgeable node tests whose gradient check failed');
  const nowPass = Object.keys(listed).filter((d) => names.includes(d) && !failed[d]);
  assert.deepEqual(nowPass, [], 'listed as not judgeable but passing: remove them from the list');
  const unknown = Object.keys(listed).filter((d) => !d.includes('@') && !names.includes(d));
  assert.deepEqual(unknown, [], 'listed but not a candidate node test');
  const reasons = new Map<string, number>();
  for (const d of Object.keys(failed)) {
    const r = listed[d] ?? '';
    reasons.set(r, (reasons.get(r) ?? 0) + 1);
  }
  t.diagnostic(
    `node tests with rules: ${names.length}; judged: ${passed} (all passed; ${fed} with inputs fed at run time); not judgeable: ${Object.keys(failed).length}`,
  );
  for (const [r, k] of [...reasons].sort((a, b) => b[1] - a[1])) t.diagnostic(`  ${k} × ${r}`);
  assert.ok(passed >= MIN_PASSED, `only ${passed} node tests passed (at least ${MIN_PASSED} did)`);
  assert.ok(
    fed >= MIN_FED_AT_RUN_TIME,
    `only ${fed} passed with inputs fed at run time (${MIN_FED_AT_RUN_TIME} did)`,
  );
});

test('the same node tests down-converted to opsets 12, 10 and 8 (onnx version_converter)', {
  skip: skipOutsideCi((!existsSync(NODE_TESTS) && `no ${NODE_TESTS}`) || torchMissing()),
}, async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'vggrpo-down-'));
  try {
    const dirs = downConvert(candidates(), [12, 10, 8], out);
    const failed: Record<string, string> = {};
    let passed = 0;
    for (const d of dirs) {
      const o = await judge(join(out, d));
      if (o.status === 'pass') passed++;
      else failed[d] = o.reason;
    }
    assert.deepEqual(
      Object.entries(failed).filter(([d]) => !listed[d]),
      [],
      'judgeable down-converted node tests whose gradient check failed',
    );
    const nowPass = Object.keys(listed).filter((d) => d.includes('@') && dirs.includes(d) && !failed[d]);
    assert.deepEqual(nowPass, [], 'listed as not judgeable but passing: remove them from the list');
    t.diagnostic(
      `down-converted: ${dirs.length}; judged: ${passed} (all passed); not judgeable: ${Object.keys(failed).length}`,
    );
    assert.ok(passed >= MIN_PASSED_DOWN, `only ${passed} down-converted node tests passed`);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

#!/usr/bin/python3
"""Down-convert ONNX backend node tests with onnx.version_converter, for
test/onnx/conformance.test.ts: for each test directory named on stdin (one per line) and each
--opset, writes OUT/<test>@opset<N>/model.onnx and its test_data_set_0 inputs. Prints
"start <test>" before each test (onnx 1.12's converter can crash the process: the caller then
restarts after it) and one JSON line per conversion that onnx cannot do.

  ls /usr/share/libonnx-testdata/data/node | /usr/bin/python3 test/onnx/downconvert.py --root /usr/share/libonnx-testdata/data/node --out /tmp/down --opset 12 9
"""
import argparse
import json
import os
import shutil
import sys
import warnings

import onnx
from onnx import version_converter


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--root', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--opset', type=int, nargs='+', required=True)
    a = ap.parse_args()
    warnings.simplefilter('ignore')
    for name in (line.strip() for line in sys.stdin):
        if not name:
            continue
        print(f'start {name}', flush=True)
        src = os.path.join(a.root, name)
        model = onnx.load(os.path.join(src, 'model.onnx'))
        have = next((o.version for o in model.opset_import if o.domain in ('', 'ai.onnx')), 0)
        for target in a.opset:
            if target >= have:
                continue
            dst = os.path.join(a.out, f'{name}@opset{target}')
            try:
                conv = version_converter.convert_version(model, target)
                onnx.checker.check_model(conv)
            except Exception as e:  # noqa: BLE001 - onnx raises several kinds
                print(json.dumps({'test': name, 'opset': target, 'error': str(e).splitlines()[0][:200]}), flush=True)
                continue
            os.makedirs(dst, exist_ok=True)
            onnx.save(conv, os.path.join(dst, 'model.onnx'))
            shutil.copytree(os.path.join(src, 'test_data_set_0'), os.path.join(dst, 'test_data_set_0'), dirs_exist_ok=True)


if __name__ == '__main__':
    main()

"""Evaluation benchmark with the per-pair reference loop of the tests beside the bulk path.

    python benchmarks/bench_eval.py [GT_JSON]

GT_JSON defaults to ../shared/data/icdar2015_test_gt/jsons/test.json. ``ocrdet bench eval`` runs the
same benchmark without the reference loop (which lives in the tests, not in the package).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ocrdet.eval.bench import bench_eval, format_bench  # noqa: E402


def load_reference():
    """``reference_match_image`` from tests/eval/test_iou_hmean.py."""
    spec = importlib.util.spec_from_file_location("test_iou_hmean", ROOT / "tests" / "eval" / "test_iou_hmean.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reference_match_image


def main() -> None:
    default = ROOT.parent / "shared" / "data" / "icdar2015_test_gt" / "jsons" / "test.json"
    gt_path = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    print(format_bench(bench_eval(gt_path, reference=load_reference())))


if __name__ == "__main__":
    main()

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ocrdet.allocator import DISABLE_ENV, find_tcmalloc

PROBE = (
    "from ocrdet.allocator import maybe_reexec_with_tcmalloc\n"
    "maybe_reexec_with_tcmalloc()\n"
    "import sys\n"
    "maps = open('/proc/self/maps').read()\n"
    "print('tcmalloc' in maps, sys.argv[1:])\n"
)


def _probe(**env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", DISABLE_ENV)}
    environment["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    result = subprocess.run(
        [sys.executable, "-c", PROBE, "--flag", "x y"],
        env={**environment, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


@pytest.mark.skipif(find_tcmalloc() is None or not Path("/proc/self/maps").exists(), reason="no tcmalloc here")
def test_reexec_preloads_tcmalloc_and_keeps_arguments() -> None:
    assert _probe() == "True ['--flag', 'x y']"


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc")
def test_switched_off_by_environment() -> None:
    assert _probe(**{DISABLE_ENV: "1"}) == "False ['--flag', 'x y']"

"""Benchmark-only peers stay out of the package: importing bayesmeta imports neither easyfsl
nor torchvision (benchmarks/easyfsl_peer.py imports them in its own environment)."""

import subprocess
import sys

CODE = """
import sys
import bayesmeta, bayesmeta.learners, bayesmeta.scoring, bayesmeta.runs, bayesmeta.cli.main
bad = sorted(m for m in sys.modules if m.split('.')[0] in ('easyfsl', 'torchvision'))
print(','.join(bad))
"""


def test_importing_bayesmeta_imports_no_peer_library():
    done = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, timeout=300, check=True
    )
    assert done.stdout.strip() == "", f"bayesmeta imported {done.stdout.strip()}"

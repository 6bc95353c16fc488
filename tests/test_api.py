"""The public Python API resolves every name it exports, lazily."""

import subprocess
import sys

import orsta_trl


def test_every_export_resolves():
    for name in orsta_trl.__all__:
        assert getattr(orsta_trl, name) is not None, name


def test_import_is_cheap():
    code = "import sys, orsta_trl; print('torch' in sys.modules, 'trl' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]

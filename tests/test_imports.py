"""The flow core is pure PyTorch: importing it never pulls in Lightning."""

import subprocess
import sys


def test_flows_do_not_import_lightning():
    code = ("import sys, glow_lightning.flows, glow_lightning.ops; "
            "bad = [m for m in sys.modules "
            "if m.split('.')[0] in ('lightning', 'pytorch_lightning')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr

"""The ``dcrcoadd`` command's start: a Ctrl-C while it loads is one line and status 130, and the
package's names load on first use (`dcrcoadd._entry`, `dcrcoadd.__init__`)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import dcrcoadd
from dcrcoadd import _entry


class _InterruptLoading:
    """A finder that stands for Ctrl-C pressed while ``dcrcoadd.cli`` is imported."""

    def find_spec(self, name, path=None, target=None):
        if name == "dcrcoadd.cli":
            raise KeyboardInterrupt
        return None


def test_ctrl_c_while_the_command_loads_is_one_line_and_status_130(monkeypatch, capsys):
    monkeypatch.delitem(sys.modules, "dcrcoadd.cli", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_InterruptLoading(), *sys.meta_path])
    assert _entry.main() == 130
    assert capsys.readouterr().err == "error: interrupted\n"


def test_the_package_loads_its_names_when_first_used():
    code = ("import sys, dcrcoadd; print('astropy' in sys.modules); "
            "print(dcrcoadd.DcrModel.__module__, dcrcoadd.io.read_exposure is dcrcoadd.read_exposure)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "dcrcoadd.dcr.model", "True"]
    assert set(dcrcoadd.__all__) <= set(dir(dcrcoadd))
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        dcrcoadd.no_such_name  # noqa: B018


def test_version_answers_without_loading_the_command_line():
    code = ("import sys; sys.argv = ['dcrcoadd', '--version']; from dcrcoadd._entry import main; "
            "status = main(); print(status, 'numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [f"dcrcoadd {dcrcoadd.__version__}", "0 False"]
    # the same line as the parser's own --version
    code = "from dcrcoadd.cli import main; main(['--version'])"
    parsed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert parsed.returncode == 0 and parsed.stdout == f"dcrcoadd {dcrcoadd.__version__}\n"

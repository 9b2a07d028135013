"""tfedge._progress: Keras' `verbose` convention for tfedge's long steps."""

from __future__ import annotations

import pytest

from tfedge import _progress
from tfedge._progress import progress, resolve_verbose, stage

VERBOSE = [("auto", 1), (None, 1), (0, 0), (1, 1), (2, 2), (True, 1), (False, 0)]


@pytest.mark.parametrize("value,level", VERBOSE, ids=[repr(v) for v, _ in VERBOSE])
def test_resolve_verbose(value, level):
    assert resolve_verbose(value) == level


@pytest.mark.parametrize("value", [3, -1, "loud", 1.0])
def test_resolve_verbose_refuses(value):
    with pytest.raises(ValueError, match="Expected `verbose` in"):
        resolve_verbose(value)


def test_verbose_0_is_silent(capsys):
    assert list(progress(range(3), desc="x", verbose=0)) == [0, 1, 2]
    with stage("y", verbose=0):
        pass
    assert capsys.readouterr().err == ""


def test_verbose_2_one_line_per_stage(capsys):
    assert list(progress(range(3), desc="sizes", verbose=2)) == [0, 1, 2]
    with stage("loading m.keras", verbose=2):
        pass
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert err[0].startswith("tfedge: sizes: 3 done in ")
    assert err[1].startswith("tfedge: loading m.keras: ")


def test_verbose_1_piped_skips_quick_stages(capsys, monkeypatch):
    monkeypatch.setattr(_progress, "_is_terminal", lambda: False)
    list(progress(range(3), desc="quick", verbose=1))
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(_progress, "QUIET_SECONDS", 0.0)
    list(progress(range(3), desc="slow", verbose="auto"))
    assert capsys.readouterr().err.startswith("tfedge: slow: 3 done")


def test_verbose_1_on_a_terminal_shows_a_bar(capsys, monkeypatch):
    monkeypatch.setattr(_progress, "_is_terminal", lambda: True)
    list(progress(range(3), desc="sensitivity", verbose=1))
    err = capsys.readouterr().err
    assert "sensitivity:" in err and "0/3" in err and "it/s" in err


def test_enabled_overrides_verbose(capsys):
    list(progress(range(3), desc="x", verbose=2, enabled=False))
    assert capsys.readouterr().err == ""

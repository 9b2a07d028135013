"""breakdown(): every byte in one column of one row; plots; the CLI logic."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tfedge.budget import (
    PARTS,
    Breakdown,
    breakdown,
    plan,
    plot_breakdown,
    plot_tradeoff,
)
from tfedge.budget._report import FLATBUFFER_ROW, _payload_parts
from tfedge.cli._budget import load_eval_data, run_budget
from tfedge.pack import compress


@pytest.fixture(scope="module")
def tiny_plan(tiny):
    _, data, eval_data = tiny
    return plan(
        data,
        int(0.5 * len(data)),
        eval_data,
        sparsities=(0.9,),
        bits=(4,),
        curve_points=3,
    )


def test_rows_sum_to_the_file_sizes(tiny_plan):
    packed = tiny_plan.apply()
    report = tiny_plan.breakdown(packed)
    assert isinstance(report, Breakdown)
    assert report.file_after == len(packed) == sum(r.after for r in report.rows)
    assert report.file_before == sum(r.before for r in report.rows)
    assert report.row(FLATBUFFER_ROW).flatbuffer > 0
    layers = [r for r in report.rows if r.layer != FLATBUFFER_ROW]
    assert all(r.flatbuffer == 0 for r in layers)
    for c in tiny_plan.choices:
        row = report.row(c.layer)
        if c.sparsity >= 0.9:  # the sparse layout: a relative index and a fill value
            assert row.indices > 0 and row.codebooks > 0
        if c.coding in ("4-bit", "ternary") and c.bytes_after < c.bytes_before:
            assert row.codebooks > 0
    assert any(r.after < r.before for r in layers)
    d = json.loads(report.to_json())
    assert d["file_after"] == len(packed) and {"after", *PARTS} <= set(d["rows"][0])
    assert "ratio" in report.table()


def test_payload_parts_are_exact(tiny):
    _, data, _ = tiny
    from tfedge.tflite import buffer_data, read, tensor_name

    packed = read(bytes(compress(data, bits=3)))
    payloads = [
        buffer_data(packed, t.buffer)
        for t in packed.subgraphs[0].tensors
        if tensor_name(t).endswith("/tfedge_payload")
    ]
    assert payloads
    for p in payloads:
        parts = _payload_parts(p)
        assert sum(parts.values()) == p.size
        assert parts["headers"] >= 28 + 10 and parts["weights"] > 0


def test_breakdown_of_lossless_compress(tiny):
    _, data, _ = tiny
    packed = compress(data, lossless=True)
    report = breakdown(bytes(packed), data)
    assert sum(r.after for r in report.rows) == len(packed)
    assert sum(r.before for r in report.rows) == len(data)
    grouped = breakdown(bytes(packed), data, layers=lambda name: "all")
    assert {r.layer for r in grouped.rows} == {"all", FLATBUFFER_ROW}


def test_plots_write_pngs(tiny_plan, tmp_path):
    fig = plot_breakdown(tiny_plan.breakdown())
    fig.savefig(tmp_path / "bytes.png")
    fig = plot_tradeoff(tiny_plan.tradeoff, budget_bytes=tiny_plan.budget_bytes)
    plot_tradeoff(tiny_plan.tradeoff, ax=fig.axes[0], label="again")
    fig.savefig(tmp_path / "tradeoff.png")
    for name in ("bytes.png", "tradeoff.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="Breakdown"):
        plot_breakdown(tiny_plan)
    with pytest.raises(ValueError, match="at least one"):
        plot_tradeoff([])


def test_cli_budget_writes_everything(tiny, tmp_path):
    _, data, (x, y) = tiny
    model = tmp_path / "m.tflite"
    model.write_bytes(data)
    npz = tmp_path / "eval.npz"
    np.savez(npz, x=x, y=y)
    out, rep, plot = tmp_path / "p.tflite", tmp_path / "r.json", str(tmp_path / "fig")
    text = run_budget(
        str(model),
        budget=len(data) // 2,
        data=str(npz),
        output=str(out),
        report=str(rep),
        plot=plot,
    )
    r = json.loads(rep.read_text())
    assert out.stat().st_size == r["plan"]["predicted_bytes"] <= len(data) // 2
    assert r["bytes"]["file_after"] == out.stat().st_size
    assert "accuracy" in text and "wrote" in text
    for suffix in ("_bytes.png", "_tradeoff.png"):
        assert (tmp_path / f"fig{suffix}").exists()


def test_cli_budget_errors(tiny, tmp_path):
    _, data, _ = tiny
    model = tmp_path / "m.tflite"
    model.write_bytes(data)
    # Flag problems (--budget missing or malformed) are the CLI's: tests/cli.
    with pytest.raises(ValueError, match="floor"):
        run_budget(str(model), budget=100)
    with pytest.raises(FileNotFoundError):
        run_budget(str(tmp_path / "missing.tflite"), budget=10_000)
    bad = tmp_path / "bad.npz"
    np.savez(bad, inputs=np.zeros(3))
    with pytest.raises(ValueError, match="'x' and 'y'"):
        load_eval_data(str(bad))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable"):
        load_eval_data(str(tmp_path / "junk.npz"))

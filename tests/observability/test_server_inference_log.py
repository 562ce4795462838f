"""The inference log and the monitor on a real tritonserver under load (see conftest.py).

Done-when of issue 14: every request sent under load is read back from Triton's own trace files
(with its status, inputs and outputs), and `tdeploy monitor` passes the clean feed and flags the
drifted one.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from observetools import Run
from typer.testing import CliRunner

from triton_deploy.cli import app
from triton_deploy.observability import InferenceRecord, read_inference_log, read_rows

pytestmark = pytest.mark.server

runner = CliRunner()


def _by_request(records: list[InferenceRecord]) -> dict[str, list[InferenceRecord]]:
    out: dict[str, list[InferenceRecord]] = {}
    for rec in records:
        assert rec.request_id is not None
        out.setdefault(rec.request_id, []).append(rec)
    return out


def test_every_request_under_load_is_in_the_inference_log(clean_run: Run) -> None:
    log = read_inference_log([clean_run.trace_dir])
    assert log.incomplete == []
    rows = _by_request(log.records)
    sent = {s.request_id: s for s in clean_run.sent}
    assert len(sent) == 300
    top = {rid: [r for r in recs if r.parent_id is None] for rid, recs in rows.items()}
    assert set(top) == set(sent), "requests missing from (or unknown to) the inference log"
    failures = [s for s in sent.values() if not s.ok]
    assert len(failures) == 3 and all(s.model == "pipeline" for s in failures)

    for rid, s in sent.items():
        (row,) = top[rid]
        assert row.model == s.model and row.version == 1
        assert row.color == "blue"  # from the chart's file name, blue.json.N
        assert row.status == ("OK" if s.ok else "FAILED")
        assert row.latency_us is not None and row.latency_us > 0
        ((name, array),) = s.inputs.items()
        assert row.batch_size == array.shape[0]
        assert row.inputs is not None
        if array.dtype == object:
            assert row.inputs[name].tolist() == array.tolist()
        else:  # Triton writes 6 significant digits
            np.testing.assert_allclose(row.inputs[name], array, rtol=1e-5, atol=1e-6)
        if s.ok:
            assert row.outputs is not None
            np.testing.assert_allclose(
                row.outputs["scores"], s.outputs["scores"], rtol=1e-5, atol=1e-6
            )
        else:
            assert row.outputs == {}

        if s.model == "pipeline":  # the ensemble's steps: child traces with the same request id
            children = {r.model: r for r in rows[rid] if r.parent_id == row.trace_id}
            assert children["featurizer"].status == ("OK" if s.ok else "FAILED")
            if s.ok:
                assert children["ranker"].status == "OK"
                np.testing.assert_allclose(
                    children["ranker"].inputs["features"],
                    children["featurizer"].outputs["features"],
                    rtol=1e-5,
                )
            else:
                assert "ranker" not in children  # the ensemble stopped at the failed step

    counts = Counter(r.model for r in log.records)
    assert counts == {"scorer": 150, "ranker": 147, "pipeline": 150, "featurizer": 150}


def test_inference_log_command_writes_rows_as_jsonl_and_parquet(
    clean_run: Run, tmp_path: Path
) -> None:
    log = read_inference_log([clean_run.trace_dir])
    for name in ("rows.jsonl", "rows.parquet"):
        out = tmp_path / name
        result = runner.invoke(app, ["inference-log", str(clean_run.trace_dir), "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert f"wrote {len(log.records)} rows" in result.output
        back = read_rows(out)
        assert [(r.request_id, r.model, r.status, r.trace_id) for r in back] == [
            (r.request_id, r.model, r.status, r.trace_id) for r in log.records
        ]
        for a, b in zip(back, log.records, strict=True):
            assert a.inputs is not None and b.inputs is not None
            for key, value in b.inputs.items():
                if value.dtype == object:
                    assert a.inputs[key].tolist() == value.tolist()
                else:
                    np.testing.assert_allclose(a.inputs[key], value)
    first = json.loads((tmp_path / "rows.jsonl").read_text().splitlines()[0])
    assert {
        "model",
        "version",
        "color",
        "request_id",
        "status",
        "latency_us",
        "inputs",
        "outputs",
    } <= set(first)


def _monitor(run: Run, tmp_path: Path, *extra: str) -> tuple[int, dict]:
    plot = tmp_path / "monitor.png"
    result = runner.invoke(
        app,
        ["monitor", "--log", str(run.trace_dir), "--repository", str(run.repository),
         "--json", "--plot", str(plot), *extra],
    )  # fmt: skip
    assert result.exit_code in (0, 3), result.output
    report = json.loads(result.stdout)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return result.exit_code, report


def test_monitor_passes_the_clean_feed(clean_run: Run, tmp_path: Path) -> None:
    # 3 of 150 pipeline requests fail on purpose: allow 5 %.
    code, report = _monitor(clean_run, tmp_path, "--max-error-ratio", "0.05")
    models = {m["model"]: m for m in report["models"]}
    assert set(models) == {"scorer", "ranker", "featurizer", "pipeline"}
    assert code == 0 and report["passed"], json.dumps(report, indent=1)[:3000]
    for m in models.values():
        assert m["color"] == "blue" and m["source"] == "log"
        assert m["drift"], f"{m['model']}: drift not measured"
        assert all(d["psi"] < 0.1 for d in m["drift"]), m["drift"]
        assert m["p50_ms"] > 0 and m["p99_ms"] >= m["p50_ms"]
    assert models["pipeline"]["failed"] == 3
    assert models["pipeline"]["error_ratio"] == pytest.approx(0.02)
    assert models["scorer"]["error_ratio"] == 0


def test_monitor_flags_the_drifted_feed(drifted_run: Run, tmp_path: Path) -> None:
    code, report = _monitor(drifted_run, tmp_path)
    assert code == 3 and not report["passed"]
    failed = {
        (m["model"], c["name"])
        for m in report["models"]
        for c in m["checks"]
        if c["passed"] is False
    }
    assert ("scorer", "psi input features") in failed
    assert ("scorer", "psi output scores") in failed
    assert ("scorer", "nonfinite output scores") in failed  # NaN features give NaN scores
    assert ("pipeline", "psi input text") in failed  # unseen words
    assert ("featurizer", "psi output features") in failed
    assert ("ranker", "psi input features") in failed
    assert not any(name == "error ratio" for _, name in failed)

"""Reading Triton 2.51's trace files as they really are.

The files in data/ were written by the local tritonserver 2.51 (nvidia-pytriton 0.7.0) with
``--trace-config level=TIMESTAMPS level=TENSORS rate=1``:

- ``tensors.json.0``: a Python model with a UINT8 input (written as raw bytes, so the file is
  not valid JSON), FP32 outputs NaN and inf, INT64 and BOOL outputs, and a request id holding a
  quote (log-frequency 1);
- ``tensors.json.1``: an ensemble (``pipe``: ``tok`` then ``lin``) whose BYTES input holds a
  quote, a backslash and a newline, written unescaped;
- ``failed.json.1``: an ensemble request whose first step returned an error (no outputs);
- ``at-exit.json``: log-frequency 0, one file written when the server stopped.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from triton_deploy.errors import ObservabilityError
from triton_deploy.observability import (
    find_trace_files,
    parse_trace_text,
    read_inference_log,
    read_trace_files,
)
from triton_deploy.observability._trace_file import TraceTensor

DATA = Path(__file__).parent / "data"


def test_the_real_file_is_not_json_but_is_read() -> None:
    raw = (DATA / "tensors.json.0").read_bytes()
    with pytest.raises(ValueError):
        json.loads(raw)
    (trace,) = parse_trace_text(raw)
    assert (trace.model, trace.version, trace.request_id) == ("u8", 1, 'quote"id')
    images = trace.inputs["a"].values()
    assert images is not None and images.dtype == np.uint8
    np.testing.assert_array_equal(images, [[0, 1, 34, 44, 92, 10], [200, 255, 7, 13, 9, 8]])
    y = trace.outputs["y"].values()
    assert y is not None and y.dtype == np.float32 and np.isnan(y[0, 0]) and np.isinf(y[1, 0])
    np.testing.assert_array_equal(trace.outputs["i"].values(), [[0, 1], [200, 255]])
    np.testing.assert_array_equal(trace.outputs["b"].values(), [[False], [True]])
    assert {"REQUEST_START", "QUEUE_START", "COMPUTE_START", "COMPUTE_END", "REQUEST_END"} <= set(
        trace.timestamps
    )


def test_unescaped_text_and_ensemble_steps() -> None:
    traces = {t.model: t for t in parse_trace_text((DATA / "tensors.json.1").read_bytes())}
    assert set(traces) == {"pipe", "tok", "lin"}
    pipe = traces["pipe"]
    assert pipe.parent_id is None
    assert traces["tok"].parent_id == pipe.id and traces["lin"].parent_id == pipe.id
    text = traces["tok"].inputs["s"].values()
    assert text is not None and text.tolist() == [[b'a"b'], [b"c\\d\n"]]
    # The ensemble's own trace holds its inputs and its final outputs.
    np.testing.assert_allclose(pipe.outputs["y"].values(), traces["lin"].outputs["y"].values())


def test_a_failed_request_has_inputs_and_no_outputs() -> None:
    log = read_inference_log([DATA / "failed.json.1"])
    status = {(r.model, r.request_id): r.status for r in log.records}
    assert status[("pipe", "ens-bad")] == "FAILED"
    assert status[("tok", "ens-bad")] == "FAILED"  # the step that returned the error
    assert status[("lin", "req-2")] == "OK"
    failed = next(r for r in log.records if r.model == "tok")
    assert failed.outputs == {} and failed.inputs is not None and failed.latency_us is not None


def test_the_file_written_at_exit_reads_like_the_indexed_ones() -> None:
    log = read_inference_log([DATA / "at-exit.json"])
    assert [r.request_id for r in log.records if r.parent_id is None][:3] == [
        "req-0",
        "req-1",
        "req-2",
    ]
    assert all(r.status == "OK" for r in log.records)


def test_folders_are_searched_and_indexed_files_kept_in_order(tmp_path: Path) -> None:
    for name in ("tensors.json.1", "tensors.json.0", "failed.json.1"):
        (tmp_path / name).write_bytes((DATA / name).read_bytes())
    (tmp_path / "notes.txt").write_text("not a trace")
    files = find_trace_files([tmp_path])
    assert [f.name for f in files] == ["failed.json.1", "tensors.json.0", "tensors.json.1"]


def test_a_file_still_being_written_is_skipped_and_reported(tmp_path: Path) -> None:
    raw = (DATA / "tensors.json.1").read_bytes()
    (tmp_path / "blue.json.0").write_bytes(raw)
    (tmp_path / "blue.json.1").write_bytes(raw[: len(raw) // 2])
    found = read_trace_files([tmp_path])
    assert found.incomplete == [tmp_path / "blue.json.1"]
    assert len(found.traces) == 3
    log = read_inference_log([tmp_path])
    assert {r.color for r in log.records} == {"blue"}  # the chart's file name: <color>.json.N


def test_garbage_is_an_error_naming_the_file_and_the_byte(tmp_path: Path) -> None:
    bad = tmp_path / "trace.json"
    bad.write_text('[{"id":1,"model_name":"m","model_version":1},{"id":1,"weird":true}]')
    with pytest.raises(ObservabilityError, match=r"trace.json: unreadable trace record at byte 45"):
        read_trace_files([bad])
    for text in ("hello", '["hello"]'):
        (tmp_path / "x.json").write_text(text)
        with pytest.raises(ObservabilityError, match=r"x\.json: not a Triton trace file"):
            read_trace_files([tmp_path / "x.json"])
    with pytest.raises(ObservabilityError, match="does not exist"):
        read_trace_files([tmp_path / "missing"])


@pytest.mark.parametrize(
    ("tensor", "expected"),
    [
        (TraceTensor("x", "FP64", (2,), b"1.5,-inf"), [1.5, -np.inf]),
        (TraceTensor("x", "INT8", (3,), b"\xff,\x01,,"), [-1, 1, 44]),
        (TraceTensor("x", "UINT16", (2, 1), b"7,65535"), [[7], [65535]]),
        (TraceTensor("x", "BYTES", (2,), b'\\"\\",\\"\xc3\xa9\\"'), [b"", "é".encode()]),
        (TraceTensor("x", "FP32", (0, 4), b""), np.zeros((0, 4))),
    ],
)
def test_every_dtype_decodes(tensor: TraceTensor, expected: object) -> None:
    values = tensor.values()
    assert values is not None
    assert values.shape == tensor.shape
    if values.dtype == object:
        assert values.tolist() == expected
    else:
        np.testing.assert_array_equal(values, np.asarray(expected))


def test_half_precision_has_no_data_and_bad_data_is_named() -> None:
    assert TraceTensor("h", "FP16", (2,), b"").values() is None
    with pytest.raises(
        ObservabilityError,
        match=re.escape("tensor 'x' (UINT8, shape [3]): data does not decode: 3 bytes"),
    ):
        TraceTensor("x", "UINT8", (3,), b"\x01,\x02").values()
    with pytest.raises(ObservabilityError, match=r"tensor 't' \(BYTES"):
        TraceTensor("t", "BYTES", (2,), b'\\"only one\\"').values()

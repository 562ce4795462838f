"""`tdeploy serve --trace`: Triton's --trace-config settings, checked before the server starts.

Triton 2.51 itself accepts a misspelt setting (``triton,fiel=...``) and a trace file in a
missing folder without a word, and then traces nothing: those are errors here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from triton_deploy.cli import app
from triton_deploy.errors import ObservabilityError
from triton_deploy.observability import DEFAULT_LOG_FREQUENCY, TraceSettings


def test_triton_mode_flags(tmp_path: Path) -> None:
    settings = TraceSettings.parse(
        [f"triton,file={tmp_path}/a,b/trace.json", "rate=1", "level=TIMESTAMPS", "level=tensors"]
    )
    assert settings.args() == [
        "--trace-config=mode=triton",
        "--trace-config=level=TIMESTAMPS",
        "--trace-config=level=TENSORS",
        "--trace-config=rate=1",
        "--trace-config=count=-1",
        f"--trace-config=triton,file={tmp_path}/a,b/trace.json",
        f"--trace-config=triton,log-frequency={DEFAULT_LOG_FREQUENCY}",
    ]
    settings.prepare()  # Triton writes nothing into a missing folder
    assert (tmp_path / "a,b").is_dir()


def test_a_relative_file_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = TraceSettings.parse(["file=traces/infer.json", "log-frequency=0"])
    assert settings.file == tmp_path / "traces" / "infer.json"
    assert "--trace-config=triton,log-frequency=0" in settings.args()


def test_opentelemetry_mode_is_implied_by_a_url() -> None:
    settings = TraceSettings.parse(
        ["url=http://127.0.0.1:4318/v1/traces", "rate=0", "resource=service.name=triton",
         "opentelemetry,bsp_schedule_delay=200"]
    )  # fmt: skip
    assert settings.mode == "opentelemetry"
    assert settings.args() == [
        "--trace-config=mode=opentelemetry",
        "--trace-config=level=TIMESTAMPS",
        "--trace-config=rate=0",
        "--trace-config=count=-1",
        "--trace-config=opentelemetry,url=http://127.0.0.1:4318/v1/traces",
        "--trace-config=opentelemetry,resource=service.name=triton",
        "--trace-config=opentelemetry,bsp_schedule_delay=200",
    ]


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["triton,fiel=/tmp/x.json"], "unknown setting 'fiel'"),
        (["rate"], "expected SETTING=VALUE"),
        (["opentelemetry,file=/tmp/x.json"], "file takes 'triton,'"),
        (["triton,rate=1", "file=/tmp/x"], r"rate takes no prefix \(global\)"),
        (["rate=1"], "give file=PATH"),
        (["file=/tmp/x.json", "rate=0"], "rate=0 traces nothing in mode triton"),
        (["file=/tmp/x.json", "rate=-2"], "rate: Input should be greater than or equal to 0"),
        (["file=/tmp/x.json", "count=many"], "count: Input should be a valid integer"),
        (["file=/tmp/x.json", "level=ALL"], "level: Input should be 'TIMESTAMPS' or 'TENSORS'"),
        (["level=OFF"], "leave tracing out"),
        (
            ["file=/tmp/x.json", "url=http://c:4318/v1/traces", "mode=triton"],
            "need mode=opentelemetry",
        ),
        (["mode=opentelemetry"], "needs url="),
        (["url=http://c:4318/v1/traces", "level=TENSORS"], "level=TENSORS is not supported"),
        (["url=http://c:4318/v1/traces", "resource=novalue"], "expected KEY=VALUE"),
    ],
)
def test_bad_settings_name_what_is_wrong(items: list[str], message: str) -> None:
    with pytest.raises(ObservabilityError, match=message):
        TraceSettings.parse(items)


def test_serve_refuses_bad_trace_settings_before_starting() -> None:
    result = CliRunner().invoke(app, ["serve", "--trace", "triton,fiel=/tmp/x.json"])
    assert result.exit_code == 1
    assert "unknown setting 'fiel'" in result.output

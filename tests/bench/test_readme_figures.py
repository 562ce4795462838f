"""The performance figures (the full block in docs/guides/performance.md, the short one in
README.md) are the committed raw data's, and nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from triton_deploy.bench import rawdata
from triton_deploy.bench.rawdata import (
    BEGIN,
    END,
    SUMMARY_BEGIN,
    SUMMARY_END,
    readme_block,
    summary_block,
)

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "docs" / "performance"
PAGE = ROOT / "docs" / "guides" / "performance.md"
README = ROOT / "README.md"


def _block(text: str, begin: str = BEGIN, end: str = END) -> str:
    return begin + text.split(begin, 1)[1].split(end, 1)[0] + end


def test_the_readme_block_is_generated_from_the_committed_raw_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(ROOT)  # the block links the files relative to the repository root
    expected = readme_block(Path("docs/performance"), Path("docs/guides/performance.md"))
    readme = PAGE.read_text()
    assert _block(readme) == expected, "run `tdeploy bench readme` and commit the page"
    summary = summary_block(Path("docs/performance"), Path("README.md"))
    assert _block(README.read_text(), SUMMARY_BEGIN, SUMMARY_END) == summary, (
        "run `tdeploy bench readme` and commit the README"
    )


def test_every_goal_in_the_raw_data_is_in_the_readme_with_its_numbers() -> None:
    goals = DATA / "goals.json"
    if not goals.exists():
        return
    block = _block(PAGE.read_text())
    data = json.loads(goals.read_text())
    assert data["goals"], "goals.json has no goals"
    for g in data["goals"]:
        median = "" if g["median"] is None else f"{g['median']:.2f}"
        spread = f"{min(g['runs']):.2f}–{max(g['runs']):.2f}" if g["runs"] else ""
        assert f"| {g['goal']} | {g['generator']} | {g['compares']} | {median} | {spread} |" in (
            block
        ), g
    # the README's short table: our generator's goals, each with its median and spread
    summary = _block(README.read_text(), SUMMARY_BEGIN, SUMMARY_END)
    for g in data["goals"]:
        if g["generator"] != "tdeploy":
            continue
        median = "" if g["median"] is None else f"{g['median']:.2f}"
        spread = f"{min(g['runs']):.2f}–{max(g['runs']):.2f}" if g["runs"] else ""
        assert f"| {g['model']} | {g['goal']} | {median} | {spread} |" in summary, g
    # each point the goals were computed from is in the file, with the run it belongs to
    for model in data["models"]:
        assert {p["run"] for p in model["points"]} <= set(range(data["runs"]))


def test_too_few_runs_or_a_busy_host_is_labelled_not_a_result(tmp_path: Path) -> None:
    quiet = {"cpu_model": "x", "cpus": 2, "load_average": [0.3, 0.3, 0.3], "steal_percent": 0.0}
    base = {"command": "c", "started": "t", "seconds_per_point": 3, "concurrency": [1, 32]}
    goal = {
        "model": "m", "goal": "g", "generator": "tdeploy", "compares": "a vs b", "median": 2.0,
        "runs": [1.9, 2.0, 2.1, 2.2, 1.8], "target": 2.0, "comparison": ">=", "status": "pass",
        "spread_crosses": True,
    }  # fmt: skip
    for runs, host, labelled in (
        (5, quiet, False),
        (2, quiet, True),
        (5, {**quiet, "load_average": [3.5, 3, 3]}, True),
        (5, {**quiet, "steal_percent": 9.0}, True),
    ):
        (tmp_path / "goals.json").write_text(
            json.dumps({**base, "runs": runs, "host": host, "goals": [goal], "models": []})
        )
        block = readme_block(tmp_path)
        assert ("Not a result" in block) == labelled, (runs, host)
        assert (
            "| m | g | tdeploy | a vs b | 2.00 | 1.80–2.20 | >= 2 | pass (spread crosses) |"
            in block
        )


def test_check_mode_fails_on_a_stale_page_or_readme(tmp_path: Path) -> None:
    page, readme = tmp_path / "performance.md", tmp_path / "README.md"
    page.write_text(f"# x\n\n{BEGIN}\nold numbers\n{END}\n")
    readme.write_text(f"# y\n\n{SUMMARY_BEGIN}\nold summary\n{SUMMARY_END}\nafter\n")
    args = ["--page", str(page), "--readme", str(readme), "--data", str(tmp_path)]
    assert rawdata.main([*args, "--check"]) == 1
    assert rawdata.main(args) == 0
    assert rawdata.main([*args, "--check"]) == 0
    assert "old numbers" not in page.read_text() and "old summary" not in readme.read_text()
    assert readme.read_text().endswith(f"{SUMMARY_END}\nafter\n")
    # one stale page is enough to fail
    readme.write_text(readme.read_text().replace("No raw data yet", "No data"))
    assert rawdata.main([*args, "--check"]) == 1


def test_the_model_analyzer_command_is_shown_without_this_machines_paths() -> None:
    command = (
        "/home/u/p/.venv-bench/model_analyzer/bin/model-analyzer profile --config-file "
        "/tmp/tdeploy-ma-abc123/profile.yaml --perf-analyzer-path "
        "/home/u/p/.venv-bench/perf_analyzer/bin/perf_analyzer --model-repository /data/repo"
    )
    assert rawdata._tool_command(command) == (
        ".venv-bench/model_analyzer/bin/model-analyzer profile --config-file "
        "$WORK/profile.yaml --perf-analyzer-path .venv-bench/perf_analyzer/bin/perf_analyzer "
        "--model-repository /data/repo"
    )


def test_the_plots_come_from_the_raw_points(tmp_path: Path) -> None:
    points = [
        {"variant": v, "generator": "tdeploy", "protocol": "gRPC", "batch": 1, "concurrency": c,
         "run": r, "throughput": 100.0 * c + r, "p99_ms": 1.0 + c}
        for v in ("triton", "triton, batching off") for c in (1, 4, 16) for r in (0, 1)
    ]  # fmt: skip
    data = {"runs": 2, "host": {"cpus": 2}, "models": [{"model": "m", "points": points}]}
    paths = rawdata.plot_sweep(data, tmp_path)
    assert [p.name for p in paths] == ["throughput.png", "latency.png"]
    assert all(p.stat().st_size > 5_000 for p in paths)

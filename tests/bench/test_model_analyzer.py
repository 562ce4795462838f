"""`tdeploy bench analyzer`: tdeploy tune next to NVIDIA's Model Analyzer on a user's model.

Reading Model Analyzer's results runs everywhere; the comparison itself needs Model Analyzer
and perf_analyzer in their own environments (`make bench-envs`, several minutes and about a
gigabyte) and is skipped where they were not created (so in CI), saying so.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from triton_deploy.bench import envs
from triton_deploy.bench.analyzer import analyzer_repository, best_analyzer_config, main
from triton_deploy.bench.payloads import BenchError


def _variant(work: Path, name: str, delay: int, batch: int) -> None:
    folder = work / "variants" / name
    folder.mkdir(parents=True)
    (folder / "config.pbtxt").write_text(
        f'name: "{name}"\nmax_batch_size: {batch}\n'
        f"dynamic_batching {{ max_queue_delay_microseconds: {delay} }}\n"
        "instance_group { count: 2 kind: KIND_CPU }\n"
    )


def test_the_configuration_model_analyzer_ranked_first_is_read_back(tmp_path: Path) -> None:
    results = tmp_path / "export" / "results"
    results.mkdir(parents=True)
    (results / "metrics-model-inference.csv").write_text(
        "Model,Batch,Concurrency,Model Config Path,Instance Group,Throughput (infer/sec)\n"
        "m,1,8,m_config_3,2:CPU,900\n"
        "m,1,16,m_config_3,2:CPU,950\n"
        "m,1,8,m_config_default,1:CPU,500\n"
        "m,1,8,m_config_1,1:CPU,400\n"
    )
    _variant(tmp_path, "m_config_3", 800, 32)
    name, config, configurations = best_analyzer_config(tmp_path, "m")
    assert name == "m_config_3" and configurations == 3
    # the variant's settings, under the model's own name (the re-measurement loads it as that)
    assert config.name == "m" and config.max_batch_size == 32
    assert config.dynamic_batching.max_queue_delay_microseconds == 800
    assert config.instance_group[0].count == 2


def test_missing_results_name_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="wrote no results under"):
        best_analyzer_config(tmp_path, "m")
    results = tmp_path / "export" / "results"
    results.mkdir(parents=True)
    (results / "metrics-model-inference.csv").write_text("Model,Model Config Path\n")
    with pytest.raises(BenchError, match="is empty"):
        best_analyzer_config(tmp_path, "m")
    (results / "metrics-model-inference.csv").write_text("Model,Model Config Path\nm,m_config_9\n")
    with pytest.raises(BenchError, match=r"m_config_9/config\.pbtxt missing"):
        best_analyzer_config(tmp_path, "m")


@pytest.mark.server
@pytest.mark.perf_analyzer
def test_tune_and_model_analyzer_both_find_and_re_measure_a_configuration(
    user_repository: Path, tmp_path: Path
) -> None:
    for name in ("model_analyzer", "perf_analyzer"):
        env = envs.environment(name)
        if not env.ready():
            pytest.skip(env.missing_reason())
    out = tmp_path / "analyzer.json"
    argv = ["--repository", str(user_repository), "--model", "tiny_trees", "--p99-ms", "50",
            "-c", "2,8", "--seconds", "1", "--rounds", "2", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    data = json.loads(out.read_text())
    assert data["model"] == "tiny_trees" and data["runs"] == 2
    tools = {t["tool"]: t for t in data["tools"]}
    assert set(tools) == {"tdeploy tune", "Model Analyzer (quick search)"}
    for tool in tools.values():
        # each found a configuration, and the same generator measured it twice at the bound
        assert "error" not in tool, tool.get("error")
        assert tool["configurations"] >= 1 and len(tool["throughput_runs"]) == 2, tool
        assert tool["throughput"] > 0 and tool["p99_ms"] > 0 and tool["wall_s"] > 0
    assert "--triton-launch-mode remote" in data["model_analyzer_command"]
    assert "--run-config-search-mode quick" in data["model_analyzer_command"]


def test_model_analyzer_gets_the_model_without_preferred_sizes_or_warmup(tmp_path: Path) -> None:
    source = tmp_path / "repo" / "m"
    (source / "1").mkdir(parents=True)
    (source / "1" / "model.onnx").write_bytes(b"weights")
    text = (
        'name: "m"\nmax_batch_size: 256\ndynamic_batching { preferred_batch_size: [32, 256] '
        "max_queue_delay_microseconds: 2000 }\n"
        'model_warmup { name: "zeros_batch_256" batch_size: 256 }\n'
    )
    (source / "config.pbtxt").write_text(text)
    repository = analyzer_repository(tmp_path / "repo", "m", tmp_path / "work")
    config = mc.ModelConfig()
    text_format.Parse((repository / "m" / "config.pbtxt").read_text(), config)
    # the list is gone; everything else as the spec made it
    assert list(config.dynamic_batching.preferred_batch_size) == [] and not config.model_warmup
    assert config.dynamic_batching.max_queue_delay_microseconds == 2000
    assert config.max_batch_size == 256
    assert (repository / "m" / "1" / "model.onnx").read_bytes() == b"weights"
    assert (source / "config.pbtxt").read_text() == text  # the original is untouched
    with pytest.raises(BenchError, match="is 'nope' a model of"):
        analyzer_repository(tmp_path / "repo", "nope", tmp_path / "work2")

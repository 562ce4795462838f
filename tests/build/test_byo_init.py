"""`tdeploy init` → `build` → `serve` → `verify`, run from the folder that holds the model file."""

from __future__ import annotations

import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from usermodels import (
    make_lightgbm,
    make_pt2_mlp,
    make_torchscript,
    make_two_input_onnx,
    make_xgboost_multiclass_ubj,
)

from triton_deploy.build.init import init_spec
from triton_deploy.build.spec import BuildSpec
from triton_deploy.runtime.server import free_port

TDEPLOY = str(Path(sys.executable).parent / "tdeploy")


def _tdeploy(cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TDEPLOY, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.server
def test_a_folder_with_only_model_onnx_is_served_and_verified(tmp_path: Path) -> None:
    made = make_two_input_onnx(tmp_path)
    folder = tmp_path / "project"
    folder.mkdir()
    made.path.rename(folder / "model.onnx")
    assert sorted(p.name for p in folder.iterdir()) == ["model.onnx"]

    done = _tdeploy(folder, "init", "model.onnx")
    assert done.returncode == 0, done.stderr
    spec = yaml.safe_load((folder / "models.yaml").read_text())
    assert spec["models"][0]["source"] == "model.onnx"
    assert spec["models"][0]["max_batch_size"] == 64
    again = _tdeploy(folder, "init", "model.onnx")
    assert again.returncode == 1 and "exists: pass --force" in again.stderr

    done = _tdeploy(folder, "build")
    assert done.returncode == 0, done.stderr
    assert "synthesized" in done.stderr  # no samples: the summary says so
    assert (folder / "model_repository" / "model" / "golden.npz").is_file()

    port = free_port()
    server = subprocess.Popen(
        [
            TDEPLOY,
            "serve",
            "--grpc-port",
            str(port),
            "--http-port",
            str(free_port()),
            "--metrics-port",
            str(free_port()),
            "--no-log-server",
        ],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        deadline, seen = time.monotonic() + 180, ""
        while "ready" not in seen and time.monotonic() < deadline and server.poll() is None:
            if select.select([server.stdout], [], [], 1.0)[0]:
                seen += server.stdout.readline()
        assert "ready" in seen, seen
        done = _tdeploy(folder, "verify", "--url", f"127.0.0.1:{port}")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "total" in done.stdout and "count" in done.stdout and "NO" not in done.stdout
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)


def test_init_writes_what_each_file_tells(tmp_path: Path) -> None:
    files = [
        make_pt2_mlp(tmp_path).path,
        make_two_input_onnx(tmp_path).path,
        make_xgboost_multiclass_ubj(tmp_path).path,
        make_lightgbm(tmp_path, classes=2).path,
        make_torchscript(tmp_path).path,
    ]
    spec_dir = tmp_path / "specs"
    spec_dir.mkdir()
    text, entries = init_spec(files, spec_dir / "models.yaml")
    assert [e.name for e in entries] == ["mlp", "pair", "species", "churn", "scorer"]
    # Paths relative to the spec's folder; samples found beside the files.
    assert "source: ../mlp.pt2" in text and "samples: ../mlp_samples.npz" in text
    assert "{ name: left, dtype: FP32, dims: [4] }" in text
    assert "{ name: count, dtype: INT64, dims: [1], reshape: [] }" in text
    assert "multi:softprob: multiclass, 6 features, 3 classes" in text
    assert "binary:logistic" not in text and "binary: binary, 6 features" in text
    assert [e.note for e in entries if e.note] == [
        "TorchScript: add `inputs:` and `outputs:` to its entry before building"
    ]
    data = yaml.safe_load(text)
    # Everything but the TorchScript entry (which needs its tensors declared) is a valid spec.
    data["models"] = [m for m in data["models"] if m["name"] != "scorer"]
    spec = BuildSpec.model_validate(data)
    assert {m.name: m.backend for m in spec.models} == {
        "mlp": "onnxruntime",
        "pair": "onnxruntime",
        "species": "fil",
        "churn": "fil",
    }


def test_init_flags_what_the_build_will_do_with_exported_files(tmp_path: Path) -> None:
    """Files as people export them: init says, in the spec it writes, what the build does."""
    from usermodels import (
        make_categorical_trees,
        make_hf_folder,
        make_hf_pt2,
        make_skl2onnx_classifier,
        make_sklearn_models,
    )

    sklearn = make_sklearn_models(tmp_path)
    categorical = make_categorical_trees(tmp_path)
    files = [
        make_skl2onnx_classifier(tmp_path, zipmap=True).path,
        make_skl2onnx_classifier(tmp_path, zipmap=False).path,
        make_hf_pt2(tmp_path).path,
        sklearn["forest"][0],
        sklearn["scaled_logreg"][0],
        sklearn["legacy"][0],
        categorical["shops_xgb"][0],
        make_hf_folder(tmp_path),
    ]
    text, entries = init_spec(files, tmp_path / "models.yaml")
    by_name = {e.name: e.text for e in entries}
    assert "ZipMap removed" in by_name["iris_zipmap"]
    assert "opset 22 converted to 21" in by_name["iris_opset22"]
    assert "expected/<output>" in by_name["iris_zipmap"]
    assert "{ name: logits, dtype: FP32, dims: [3] }" in by_name["bert_cls"]  # not linear_13
    assert "backend: fil" in by_name["forest"] and "backend: fil" not in by_name["scaled_logreg"]
    assert "trust_pickle: false" in by_name["legacy"]
    assert "categorical: codes" in by_name["shops_xgb"] and "['city']" in by_name["shops_xgb"]
    assert "task: text-classification" in by_name["reviews"]
    assert "samples: reviews_samples.txt" in by_name["reviews"]
    data = yaml.safe_load(text)
    spec = BuildSpec.model_validate(data)  # every entry is valid as written
    assert {m.name: m.backend for m in spec.models}["reviews"] == "onnxruntime"
    assert [e.note for e in entries if e.note] == [
        "a pickle: set `trust_pickle: true` in its entry if you trust the file"
    ]


def test_init_in_a_fresh_process_finds_the_module_a_pytree_output_needs(tmp_path: Path) -> None:
    """Where transformers was never imported, the .pt2's SequenceClassifierOutput is unknown to
    torch: init finds the module that registers it and writes `pre_import:`."""
    import subprocess
    import sys

    from usermodels import make_hf_pt2

    path = make_hf_pt2(tmp_path).path
    tdeploy = Path(sys.executable).parent / "tdeploy"
    spec = tmp_path / "models.yaml"
    done = subprocess.run(
        [str(tdeploy), "init", str(path), "--spec", str(spec)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "pre_import: [transformers.modeling_outputs]" in spec.read_text()

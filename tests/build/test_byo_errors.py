"""Bad model files and bad specs, as `tdeploy build` users make them.

Each one gives exit code 1 and an `error:` naming the file and the reason (no traceback), before
any training, and leaves the repository that was already in --out exactly as it was.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner
from usermodels import make_lightgbm, make_torch_onnx_default, make_two_input_onnx

from triton_deploy.cli import app


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A folder with pair.onnx and a repository already built from it."""
    folder = tmp_path_factory.mktemp("good")
    make_two_input_onnx(folder)
    spec = folder / "models.yaml"
    spec.write_text(
        yaml.safe_dump(
            {"models": [{"name": "pair", "source": "pair.onnx", "samples": "pair_samples.npz"}]}
        )
    )
    out = folder / "model_repository"
    result = CliRunner().invoke(app, ["build", "--spec", str(spec), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return folder, out


def _run(
    folder: Path, out: Path, entries: list[dict[str, Any]], extra: dict[str, Any] | None = None
) -> Any:
    spec = folder / "bad.yaml"
    spec.write_text(yaml.safe_dump({"models": entries, **(extra or {})}))
    return CliRunner().invoke(app, ["build", "--spec", str(spec), "--out", str(out)])


def _truncated(folder: Path) -> dict[str, Any]:
    data = (folder / "pair.onnx").read_bytes()
    (folder / "cut.onnx").write_bytes(data[: len(data) // 3])
    return {"name": "m", "source": "cut.onnx"}


def _garbage(folder: Path) -> dict[str, Any]:
    (folder / "junk.onnx").write_bytes(b"\x00\x13garbage" + os.urandom(200))
    return {"name": "m", "source": "junk.onnx"}


def _mislabelled(folder: Path) -> dict[str, Any]:
    model = make_lightgbm(folder, classes=2)
    shutil.copyfile(model.path, folder / "churn.onnx")
    return {"name": "m", "source": "churn.onnx"}


def _new_ml_opset(folder: Path) -> dict[str, Any]:
    """ai.onnx opsets are converted down; ai.onnx.ml ones cannot be: the exporter must."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "ml5",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
    )
    opsets = [helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 5)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 10
    onnx.save(model, str(folder / "ml5.onnx"))
    return {"name": "m", "source": "ml5.onnx"}


def _exported(folder: Path, sub: str) -> Path:
    (folder / sub).mkdir(exist_ok=True)
    return make_torch_onnx_default(folder / sub, hidden=32, name="net").path


def _data_missing(folder: Path) -> dict[str, Any]:
    path = _exported(folder, "nodata")
    path.with_name("net.onnx.data").unlink()
    return {"name": "m", "source": "nodata/net.onnx"}


def _data_truncated(folder: Path) -> dict[str, Any]:
    data = _exported(folder, "cutdata").with_name("net.onnx.data")
    data.write_bytes(data.read_bytes()[:1000])
    return {"name": "m", "source": "cutdata/net.onnx"}


def _data_escapes(folder: Path) -> dict[str, Any]:
    import onnx

    path = _exported(folder, "escape")
    model = onnx.load(str(path), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../escape/net.onnx.data"
    onnx.save(model, str(path))
    return {"name": "m", "source": "escape/net.onnx"}


def _sequence_output(folder: Path) -> dict[str, Any]:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("SequenceConstruct", ["x", "x"], ["pieces"])],
        "seq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
        [
            helper.make_tensor_sequence_value_info("pieces", TensorProto.FLOAT, ["N", 2]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(folder / "seq.onnx"))
    return {"name": "m", "source": "seq.onnx"}


def _untrusted_pickle(folder: Path) -> dict[str, Any]:
    import joblib
    from sklearn.linear_model import LinearRegression

    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    joblib.dump(LinearRegression().fit(x, x[:, 0]), folder / "linear.joblib")
    return {"name": "m", "source": "linear.joblib"}


def _not_a_tree_for_fil(folder: Path) -> dict[str, Any]:
    import skops.io
    from sklearn.linear_model import LinearRegression

    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    skops.io.dump(LinearRegression().fit(x, x[:, 0]), str(folder / "linear.skops"))
    return {"name": "m", "source": "linear.skops", "backend": "fil"}


def _folder_without_config(folder: Path) -> dict[str, Any]:
    (folder / "my-model").mkdir(exist_ok=True)
    (folder / "my-model" / "weights.bin").write_bytes(b"\0" * 16)
    return {"name": "m", "source": "my-model/"}


def _folder_without_weights(folder: Path) -> dict[str, Any]:
    (folder / "no-weights").mkdir(exist_ok=True)
    (folder / "no-weights" / "config.json").write_text('{"model_type": "bert"}')
    return {"name": "m", "source": "no-weights/"}


def _strings_without_categories(folder: Path) -> dict[str, Any]:
    make_lightgbm(folder, classes=2)
    return {"name": "m", "source": "churn.txt", "categorical": "strings"}


def _unregistered_pytree(folder: Path) -> dict[str, Any]:
    """Outputs of a pytree type registered by a module the build has not imported."""
    import dataclasses

    import torch
    from torch.utils import _pytree

    @dataclasses.dataclass
    class Scores:
        low: torch.Tensor
        high: torch.Tensor

    _pytree.register_dataclass(Scores, serialized_type_name="my_models.outputs.Scores")

    class Net(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> Scores:
            return Scores(x - 1, x + 1)

    program = torch.export.export(Net(), (torch.zeros(2, 3),))
    torch.export.save(program, str(folder / "scores.pt2"))
    _pytree._deregister_pytree_node(Scores)  # as in a fresh process that never imported it
    return {"name": "m", "source": "scores.pt2"}


def _objective(folder: Path) -> dict[str, Any]:
    import xgboost

    x = np.random.default_rng(0).standard_normal((100, 3)).astype(np.float32)
    booster = xgboost.train(
        {"objective": "reg:absoluteerror"}, xgboost.DMatrix(x, label=x[:, 0]), 3
    )
    booster.save_model(str(folder / "mae.json"))
    return {"name": "m", "source": "mae.json"}


def _state_dict(folder: Path) -> dict[str, Any]:
    import torch

    torch.save(torch.nn.Linear(2, 2).state_dict(), folder / "weights.pt")
    tensor = {"dtype": "FP32", "dims": [2]}
    return {
        "name": "m",
        "source": "weights.pt",
        "inputs": [{"name": "x", **tensor}],
        "outputs": [{"name": "y", **tensor}],
    }


def _fixed_batch(folder: Path) -> dict[str, Any]:
    make_two_input_onnx(folder, fixed_batch=True)
    return {"name": "m", "source": "fixed.onnx", "max_batch_size": 64}


def _wrong_dtype(folder: Path) -> dict[str, Any]:
    return {
        "name": "m",
        "source": "pair.onnx",
        "inputs": [{"name": "left", "dtype": "INT32", "dims": [4]}],
    }


def _unknown_input(folder: Path) -> dict[str, Any]:
    return {
        "name": "m",
        "source": "pair.onnx",
        "inputs": [{"name": "lefty", "dtype": "FP32", "dims": [4]}],
    }


def _samples_keys(folder: Path) -> dict[str, Any]:
    np.savez(folder / "wrong_keys.npz", left=np.zeros((3, 4), np.float32))
    return {"name": "m", "source": "pair.onnx", "samples": "wrong_keys.npz"}


def _pickled_samples(folder: Path) -> dict[str, Any]:
    np.save(folder / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return {"name": "m", "source": "pair.onnx", "samples": "objects.npy"}


def _python_without_class(folder: Path) -> dict[str, Any]:
    (folder / "helper.py").write_text("def execute(requests):\n    return []\n")
    tensor = {"dtype": "FP32", "dims": [1]}
    return {
        "name": "m",
        "python_model": "helper.py",
        "inputs": [{"name": "x", **tensor}],
        "outputs": [{"name": "y", **tensor}],
    }


CASES: list[tuple[str, Callable[[Path], dict[str, Any]], list[str]]] = [
    ("missing file", lambda f: {"name": "m", "source": "nope.onnx"}, ["nope.onnx: file not found"]),
    ("truncated ONNX", _truncated, ["cut.onnx:", "ONNX"]),
    ("garbage", _garbage, ["junk.onnx: not a model file"]),
    (
        "extension and content disagree",
        _mislabelled,
        ["churn.onnx", "'.onnx' says onnx", "LightGBM text model"],
    ),
    ("unsupported ml opset", _new_ml_opset, ["ml5.onnx", "ai.onnx.ml opset 5", "target_opset"]),
    (
        "external data missing",
        _data_missing,
        ["net.onnx", "net.onnx.data", "does not exist", "copy 'net.onnx.data' beside"],
    ),
    ("external data truncated", _data_truncated, ["net.onnx.data", "has 1000 bytes", "truncated"]),
    ("external data escapes", _data_escapes, ["net.onnx", "outside the model's folder", "'../'"]),
    (
        "non-tensor output",
        _sequence_output,
        ["seq.onnx", "'pieces'", "sequences or maps", "`outputs:`"],
    ),
    (
        "folder without config.json",
        _folder_without_config,
        ["my-model", "without config.json", "save_pretrained"],
    ),
    ("folder without weights", _folder_without_weights, ["no-weights", "without weights"]),
    (
        "categorical strings without categories",
        _strings_without_categories,
        ["churn.txt", "`categorical: strings`", "no categorical features"],
    ),
    (
        "pickle not trusted",
        _untrusted_pickle,
        ["linear.joblib", "runs code", "skops.io.dump", "trust_pickle: true"],
    ),
    ("fil for a linear model", _not_a_tree_for_fil, ["linear.skops", "LinearRegression", "FIL"]),
    (
        "unregistered pytree output",
        _unregistered_pytree,
        ["scores.pt2", "my_models.outputs.Scores", "pre_import: [my_models.outputs]"],
    ),
    ("objective FIL cannot serve", _objective, ["mae.json", "reg:absoluteerror", "FIL"]),
    ("a state_dict, not a model", _state_dict, ["weights.pt", "state_dict", "torch.export.save"]),
    ("fixed first dim", _fixed_batch, ["fixed.onnx", "fixed first dim", "max_batch_size: 0"]),
    (
        "declared dtype differs",
        _wrong_dtype,
        ["pair.onnx", "'left' is declared INT32", "left FP32 [-1, 4]"],
    ),
    ("declared input not in the file", _unknown_input, ["declared input 'lefty'", "right INT64"]),
    ("samples keys", _samples_keys, ["wrong_keys.npz", "missing ['right']"]),
    ("pickled samples", _pickled_samples, ["objects.npy", "pickled"]),
    ("python model with no class", _python_without_class, ["helper.py", "TritonPythonModel"]),
]


@pytest.mark.parametrize(("case", "make", "needles"), CASES, ids=[c[0] for c in CASES])
def test_bad_artifact_is_one_clear_error_and_the_repository_is_untouched(
    good: tuple[Path, Path], case: str, make: Callable[[Path], dict[str, Any]], needles: list[str]
) -> None:
    folder, out = good
    before = tree_digest(out)
    result = _run(folder, out, [make(folder)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    for needle in needles:
        assert needle in result.output, (needle, result.output)
    assert tree_digest(out) == before
    assert not list(out.parent.glob(f".{out.name}.tdeploy-*")), "work folders left behind"


def test_python_model_path_outside_the_project_is_checked_not_copied(
    good: tuple[Path, Path],
) -> None:
    folder, out = good
    (folder / "evil").mkdir(exist_ok=True)
    target = Path("/etc/hostname") if Path("/etc/hostname").is_file() else Path("/etc/os-release")
    link = folder / "evil" / "model.py"
    link.unlink(missing_ok=True)
    link.symlink_to(target)
    before = tree_digest(out)
    tensor = {"dtype": "FP32", "dims": [1]}
    entry = {
        "name": "m",
        "python_model": "evil/model.py",
        "inputs": [{"name": "x", **tensor}],
        "outputs": [{"name": "y", **tensor}],
    }
    result = _run(folder, out, [entry])
    assert result.exit_code == 1 and "model.py" in result.output
    assert "TritonPythonModel" in result.output or "not valid Python" in result.output
    # The path as the issue wrote it: not even a .py file.
    traversal = os.path.relpath("/etc/hostname", folder)
    result = _run(folder, out, [entry | {"python_model": traversal}])
    assert result.exit_code == 1 and "must be a .py file" in result.output
    assert tree_digest(out) == before


def test_torchscript_without_tensors_says_which_keys_to_add(good: tuple[Path, Path]) -> None:
    folder, out = good
    result = _run(folder, out, [{"name": "m", "source": "scorer.pt"}])
    assert result.exit_code == 1
    assert "declare `inputs:` and `outputs:`" in result.output and "models[0] (m)" in result.output


def test_spec_problems_are_found_before_any_recipe_runs(good: tuple[Path, Path]) -> None:
    folder, out = good
    marker = folder / "trained.marker"
    (folder / "recipes.py").write_text(
        "from pathlib import Path\n"
        f"def train(out, seed=0):\n    Path({str(marker)!r}).write_text('trained')\n"
        "    (out / 'm.onnx').write_bytes(b'')\n"
    )
    recipes = {"recipes": [{"name": "r", "function": "recipes.py:train", "outputs": ["m.onnx"]}]}
    # A bad reference elsewhere in the spec: the recipe must not run at all.
    entries = [
        {"name": "a", "source": "recipe:r/m.onnx"},
        {"name": "b", "source": "missing.onnx"},
    ]
    result = _run(folder, out, entries, recipes)
    assert result.exit_code == 1 and "missing.onnx: file not found" in result.output
    assert not marker.exists()
    for bad_function, needle in (
        ("recipes.py:nope", "has no function 'nope'"),
        ("no_such_file.py:train", "no_such_file.py not found"),
        ("no.such.module:train", "module 'no.such.module' not found"),
    ):
        spec = {"recipes": [{"name": "r", "function": bad_function, "outputs": ["m.onnx"]}]}
        result = _run(folder, out, [entries[0]], spec)
        assert result.exit_code == 1 and needle in result.output, result.output
    result = _run(folder, out, [{"name": "a", "source": "recipe:r/other.onnx"}], recipes)
    assert result.exit_code == 1 and "does not list 'other.onnx'" in result.output
    assert not marker.exists()


def test_a_failing_recipe_leaves_the_repository(good: tuple[Path, Path]) -> None:
    folder, out = good
    (folder / "broken_recipe.py").write_text(
        "def train(out, seed=0):\n    raise RuntimeError('no GPU quota')\n"
    )
    recipes = {
        "recipes": [{"name": "r", "function": "broken_recipe.py:train", "outputs": ["m.onnx"]}]
    }
    before = tree_digest(out)
    result = _run(folder, out, [{"name": "a", "source": "recipe:r/m.onnx"}], recipes)
    assert result.exit_code == 1
    assert "recipe 'r'" in result.output and "no GPU quota" in result.output
    assert tree_digest(out) == before


def test_non_utf8_spec_and_unwritable_out(tmp_path: Path, good: tuple[Path, Path]) -> None:
    folder, _ = good
    spec = tmp_path / "latin1.yaml"
    spec.write_bytes("models: [{name: caf\xe9, source: x.onnx}]\n".encode("latin-1"))
    result = CliRunner().invoke(app, ["build", "--spec", str(spec), "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and "not UTF-8" in result.output
    ok_spec = folder / "models.yaml"
    result = CliRunner().invoke(
        app, ["build", "--spec", str(ok_spec), "--out", "/proc/tdeploy-nowhere/model_repository"]
    )
    assert result.exit_code == 1 and "cannot write in /proc" in result.output


def test_the_real_process_prints_no_traceback(good: tuple[Path, Path]) -> None:
    folder, out = good
    spec = folder / "process.yaml"
    (folder / "garbage.onnx").write_bytes(b"\x00not onnx")
    spec.write_text(yaml.safe_dump({"models": [{"name": "m", "source": "garbage.onnx"}]}))
    tdeploy = Path(sys.executable).parent / "tdeploy"
    done = subprocess.run(
        [str(tdeploy), "build", "--spec", str(spec), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd="/",
        timeout=300,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and "garbage.onnx" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout

"""Users' own model files, one of each format, built and served by the real tritonserver.

The spec lives in another folder than the model files and the build runs from a third working
directory: relative paths resolve against the spec's folder, never the current directory.
Served outputs are compared with each file's own framework run here, in the test.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from rich.console import Console
from tritonclient.grpc import model_config_pb2 as mc
from usermodels import UserModel, spec_entry

from triton_deploy.build.golden import load_golden_cases
from triton_deploy.build.pipeline import MANIFEST, BuildReport, build_repository
from triton_deploy.build.spec import load_spec
from triton_deploy.runtime.repository import read_config

QUIET = Console(stderr=True, quiet=True)

# FIL's other output contracts, on the same files: (base model, fil options, expected from the
# base model's probabilities).
VARIANTS = {
    "tier_class": ("tier", {"predict_proba": False}, lambda p: p.argmax(1).reshape(-1, 1)),
    "churn_label": (
        "churn",
        {"predict_proba": False, "threshold": 0.3},
        lambda p: (p > 0.3).astype(np.float32),
    ),
    "churn_pair": ("churn", {"proba_width": 2}, lambda p: np.hstack([1 - p, p])),
    "species_class": ("species", {"predict_proba": False}, lambda p: p.argmax(1).reshape(-1, 1)),
}


@pytest.fixture(scope="module")
def built(
    user_models: dict[str, UserModel], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, BuildReport]]:
    spec_dir = tmp_path_factory.mktemp("spec_elsewhere")
    elsewhere = tmp_path_factory.mktemp("some_cwd")
    spec_path = spec_dir / "models.yaml"
    entries = [spec_entry(m, spec_dir) for m in user_models.values()]
    for name, (base, options, _) in VARIANTS.items():
        entries.append(spec_entry(user_models[base], spec_dir) | {"name": name, "fil": options})
    spec_path.write_text(yaml.safe_dump({"models": entries}))
    out = tmp_path_factory.mktemp("user_repo") / "model_repository"
    here = Path.cwd()
    os.chdir(elsewhere)
    try:
        report = build_repository(load_spec(spec_path), out, console=QUIET)
    finally:
        os.chdir(here)
    yield out, report


def test_every_format_builds_and_passes_parity(built: tuple[Path, BuildReport]) -> None:
    out, report = built
    results = {r.model: r for r in report.results}
    assert {name: r.status for name, r in results.items()} == dict.fromkeys(results, "OK"), [
        (r.model, r.detail) for r in report.results
    ]
    assert results["mlp"].step == "pt2→onnx"
    assert results["scorer"].step == "torchscript→onnx"
    assert results["pair"].step == "onnx (copy)"
    assert {results[n].step for n in ("species", "price", "churn", "tier")} == {"trees→fil"}
    for result in results.values():
        assert result.parity is not None and result.parity["passed"]
        assert "rows" in result.samples and "synthesized" not in result.samples
    manifest = json.loads((out / MANIFEST).read_text())["models"]
    assert manifest["species"]["format"] == "xgboost_ubj"
    assert manifest["tier"]["format"] == "lightgbm"


def test_tensors_come_from_the_files(built: tuple[Path, BuildReport]) -> None:
    out, _ = built
    pair = read_config(out / "pair" / "config.pbtxt")
    # ONNX names are kept as the file has them; dtypes and dims read from the graph.
    assert [(t.name, t.data_type, list(t.dims)) for t in pair.input] == [
        ("left", mc.TYPE_FP32, [4]),
        ("right", mc.TYPE_INT64, [4]),
    ]
    total, count = pair.output
    assert (total.name, list(total.dims)) == ("total", [4])
    # An output that is only the batch axis: dims [1] for the client, shape [] for the model.
    assert (count.name, list(count.dims), list(count.reshape.shape)) == ("count", [1], [])
    assert pair.platform == "onnxruntime_onnx" and pair.max_batch_size == 64
    mlp = read_config(out / "mlp" / "config.pbtxt")
    assert [(t.name, list(t.dims)) for t in mlp.input] == [("features", [16])]  # forward()'s arg
    assert [(t.name, list(t.dims)) for t in mlp.output] == [("probabilities", [4])]  # declared
    species = read_config(out / "species" / "config.pbtxt")
    assert species.backend == "fil"
    assert list(species.input[0].dims) == [6] and list(species.output[0].dims) == [3]
    params = {k: v.string_value for k, v in species.parameters.items()}
    assert params["model_type"] == "xgboost_json" and params["predict_proba"] == "true"
    assert (out / "species/1/xgboost.json").is_file()
    price = {
        k: v.string_value for k, v in read_config(out / "price/config.pbtxt").parameters.items()
    }
    assert price["output_class"] == "false" and price["predict_proba"] == "false"
    tier = read_config(out / "tier" / "config.pbtxt")
    assert {k: v.string_value for k, v in tier.parameters.items()}["model_type"] == "lightgbm"
    assert (out / "tier/1/model.txt").is_file() and list(tier.output[0].dims) == [3]
    churn = read_config(out / "churn" / "config.pbtxt")
    assert list(churn.output[0].dims) == [1]  # binary: P(positive)


def test_golden_cases_are_the_samples_and_the_source_outputs(
    built: tuple[Path, BuildReport], user_models: dict[str, UserModel]
) -> None:
    out, _ = built
    cases = load_golden_cases(out)
    assert set(cases) == set(user_models) | set(VARIANTS)
    for name, model in user_models.items():
        case = cases[name]
        expected = model.reference(model.inputs)
        for key, value in model.inputs.items():  # as a client sends them: [N] becomes [N, 1]
            np.testing.assert_array_equal(case.inputs[key], value.reshape(len(value), -1))
        for key, value in expected.items():
            got = case.expected[key]
            if value.ndim == 1:  # stored as the client receives it: [N, 1]
                value = value.reshape(-1, 1)
            np.testing.assert_allclose(got, value, rtol=1e-6, atol=1e-6)


def _infer(client, name: str, inputs: dict[str, np.ndarray], outputs: list[str], batch: int):  # type: ignore[no-untyped-def]
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import np_to_triton_dtype

    rows = next(iter(inputs.values())).shape[0]
    parts: dict[str, list[np.ndarray]] = {o: [] for o in outputs}
    for start in range(0, rows, batch):
        request = []
        for key, value in inputs.items():
            chunk = np.ascontiguousarray(value[start : start + batch])
            tensor = grpcclient.InferInput(key, list(chunk.shape), np_to_triton_dtype(chunk.dtype))
            tensor.set_data_from_numpy(chunk)
            request.append(tensor)
        result = client.infer(name, request, client_timeout=60)
        for o in outputs:
            parts[o].append(result.as_numpy(o))
    return {o: np.concatenate(v) for o, v in parts.items()}


@pytest.mark.server
def test_served_outputs_match_each_files_own_framework(
    built: tuple[Path, BuildReport], user_models: dict[str, UserModel]
) -> None:
    import tritonclient.grpc as grpcclient

    from triton_deploy.runtime.server import TritonServer

    out, _ = built
    measured = {}
    with TritonServer(out) as server:
        client = grpcclient.InferenceServerClient(server.grpc_url)
        for name, model in user_models.items():
            expected = model.reference(model.inputs)
            wire = {k: v.reshape(len(v), -1) for k, v in model.inputs.items()}  # [N] -> [N, 1]
            got = _infer(client, name, wire, list(expected), model.entry["max_batch_size"])
            worst = 0.0
            for key, value in expected.items():
                served = got[key].reshape(value.shape)
                if value.dtype.kind in "iu":
                    np.testing.assert_array_equal(served, value)
                    continue
                tolerance = model.entry.get("tolerance", {"atol": 1e-5, "rtol": 1e-5})
                np.testing.assert_allclose(
                    served, value, atol=tolerance["atol"], rtol=tolerance["rtol"], err_msg=name
                )
                worst = max(worst, float(np.max(np.abs(served - value))))
            measured[f"{name} ({model.path.suffix})"] = worst
        for name, (base, _, expect) in VARIANTS.items():
            model = user_models[base]
            want = expect(model.reference(model.inputs)["output__0"]).astype(np.float32)
            got = _infer(client, name, model.inputs, ["output__0"], 64)["output__0"]
            np.testing.assert_allclose(got, want, atol=1e-5, err_msg=name)
            measured[f"{name} (fil {VARIANTS[name][1]})"] = float(np.max(np.abs(got - want)))
        client.close()
    print("\nserved vs source framework, max abs diff:", json.dumps(measured, indent=1))

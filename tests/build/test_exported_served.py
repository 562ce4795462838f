"""Models as people really export them, built, served by the real tritonserver and checked.

Every file here is made by the library people use, with its defaults: ``torch.onnx.export``
(weights in ``.onnx.data``, a fixed batch of 2, an output named ``linear_2``), skl2onnx (ZipMap
output; opset 22 with ZipMap off), a Hugging Face model through torch.export (a
``SequenceClassifierOutput``), scikit-learn estimators saved with skops, a Hugging Face folder
from ``save_pretrained``, XGBoost/LightGBM with categorical features. Served outputs are
compared over gRPC with the source framework run here, in the test, on fresh inputs (never the
samples the build saw) at batch sizes 1, 7 and 32.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from rich.console import Console
from tritonclient.grpc import model_config_pb2 as mc
from typer.testing import CliRunner
from usermodels import (
    CITIES,
    SENTENCES,
    UserModel,
    categorical_frame,
    hf_reference,
    make_categorical_trees,
    make_hf_folder,
    make_hf_pt2,
    make_huge_external_onnx,
    make_skl2onnx_classifier,
    make_sklearn_models,
    make_torch_onnx_default,
    spec_entry,
)

from triton_deploy.build.pipeline import BuildReport, build_repository
from triton_deploy.build.spec import load_spec
from triton_deploy.cli import app
from triton_deploy.runtime.repository import read_config

QUIET = Console(stderr=True, quiet=True)
BATCHES = (1, 7, 32)
MEASURED: dict[str, float] = {}


def infer(client: Any, name: str, inputs: dict[str, np.ndarray], outputs: list[str]) -> Any:
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import np_to_triton_dtype

    request = []
    for key, value in inputs.items():
        value = np.ascontiguousarray(value)
        dtype = "BYTES" if value.dtype.kind in "OSU" else np_to_triton_dtype(value.dtype)
        tensor = grpcclient.InferInput(key, list(value.shape), dtype)
        tensor.set_data_from_numpy(value.astype(object) if dtype == "BYTES" else value)
        request.append(tensor)
    result = client.infer(name, request, client_timeout=120)
    return {o: result.as_numpy(o) for o in outputs}


def check_fresh(
    client: Any,
    name: str,
    make_inputs: Callable[[int, int], dict[str, np.ndarray]],
    reference: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
    *,
    atol: float,
    rtol: float,
    label: str | None = None,
) -> float:
    """Fresh inputs at each batch size, served vs the source framework; the worst diff."""
    worst = 0.0
    for seed, batch in enumerate(BATCHES, start=1000):
        inputs = make_inputs(batch, seed)
        want = reference(inputs)
        got = infer(client, name, inputs, list(want))
        for key, value in want.items():
            served = got[key]
            assert served.shape[0] == batch, (name, key, served.shape)
            served = served.reshape(value.shape)
            if value.dtype.kind in "iuOSUb":
                np.testing.assert_array_equal(served, value, err_msg=f"{name}.{key}")
                continue
            np.testing.assert_allclose(
                served, value, atol=atol, rtol=rtol, err_msg=f"{name}.{key} batch {batch}"
            )
            worst = max(worst, float(np.max(np.abs(served - value))))
    MEASURED[label or name] = worst
    return worst


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, UserModel]:
    folder = tmp_path_factory.mktemp("exported")
    made = [
        make_skl2onnx_classifier(folder, zipmap=True),
        make_skl2onnx_classifier(folder, zipmap=False),
        make_hf_pt2(folder),
    ]
    return {m.name: m for m in made}


@pytest.fixture(scope="module")
def hf_folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hf")
    return {
        "text-classification": make_hf_folder(folder),
        "feature-extraction": make_hf_folder(folder, task="feature-extraction"),
    }


@pytest.fixture(scope="module")
def sklearn_models(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[Path, Any, dict[str, Any]]]:
    return make_sklearn_models(tmp_path_factory.mktemp("sklearn"))


@pytest.fixture(scope="module")
def categorical(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Any]]:
    return make_categorical_trees(tmp_path_factory.mktemp("categorical"))


@pytest.fixture(scope="module")
def built(
    exported: dict[str, UserModel],
    hf_folders: dict[str, Path],
    sklearn_models: dict[str, tuple[Path, Any, dict[str, Any]]],
    categorical: dict[str, tuple[Path, Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, BuildReport]]:
    spec_dir = tmp_path_factory.mktemp("spec")
    spec_path = spec_dir / "models.yaml"
    entries = [spec_entry(m, spec_dir) for m in exported.values()]
    for name, (path, _, extras) in sklearn_models.items():
        entries.append({"name": name, "source": str(path), **extras})
    for name, (path, _) in categorical.items():
        entries.append({"name": name, "source": str(path), "categorical": "codes"})
        entries.append({"name": f"{name}_s", "source": str(path), "categorical": "strings"})
    for task, folder in hf_folders.items():
        entries.append(
            {
                "name": folder.name,
                "source": f"{folder}/",  # a save_pretrained folder, given as people write it
                "samples": str(folder.parent / f"{folder.name}_samples.txt"),
                "task": task,
                "max_batch_size": 32,
                "tolerance": {"atol": 1e-5, "rtol": 1e-4},
            }
        )
    spec_path.write_text(yaml.safe_dump({"models": entries}))
    out = tmp_path_factory.mktemp("repo") / "model_repository"
    report = build_repository(load_spec(spec_path), out, console=QUIET)
    yield out, report


def test_exports_build_with_the_edits_triton_needs(built: tuple[Path, BuildReport]) -> None:
    out, report = built
    results = {r.model: r for r in report.results}
    assert all(r.status == "OK" for r in report.results), [
        (r.model, r.detail) for r in report.results
    ]
    assert "ZipMap removed" in results["iris_zipmap"].detail
    assert "opset 22 converted to 21" in results["iris_opset22"].detail
    # Parity of the ONNX files was against scikit-learn's own outputs (expected/ in the samples).
    assert "expected ['output_probability']" in results["iris_zipmap"].samples
    zipmap = read_config(out / "iris_zipmap" / "config.pbtxt")
    assert [(t.name, list(t.dims)) for t in zipmap.output] == [
        ("output_label", [1]),
        ("output_probability", [3]),
    ]
    assert list(zipmap.output[0].reshape.shape) == []  # [N] from the framework: reshape []
    # A Hugging Face folder: one ensemble, strings in, logits/probabilities/label out.
    reviews = read_config(out / "reviews" / "config.pbtxt")
    assert reviews.platform == "ensemble"
    assert [s.model_name for s in reviews.ensemble_scheduling.step] == [
        "reviews_tokenizer",
        "reviews_model",
        "reviews_labels",
    ]
    assert [(t.name, t.data_type) for t in reviews.input] == [("text", mc.TYPE_STRING)]
    assert [t.name for t in reviews.output] == ["logits", "probabilities", "label"]
    model = read_config(out / "reviews_model" / "config.pbtxt")
    assert [list(t.dims) for t in model.input] == [[-1], [-1], [-1]]  # dynamic sequence
    embedder = read_config(out / "review_embedder" / "config.pbtxt")
    assert [t.name for t in embedder.output] == ["embedding"]
    # The tokenizer's `tokenizers` is vendored as an abi3 wheel's files: Python 3.10 imports it.
    vendor = out / "reviews_tokenizer" / "1" / "vendor"
    assert list(vendor.glob("tokenizers/tokenizers.abi3.so"))
    wheel = next(vendor.glob("tokenizers-*.dist-info")) / "WHEEL"
    assert "abi3-manylinux" in wheel.read_text()
    for generated in ("reviews_tokenizer", "reviews_labels"):
        source = (out / generated / "1" / "model.py").read_text()
        ast.parse(source, feature_version=(3, 10))  # the container's Python
    manifest = json.loads((out / "manifest.json").read_text())["models"]
    assert manifest["reviews_tokenizer"]["companion_of"] == "reviews"
    assert any(f.endswith("tokenizers.abi3.so") for f in manifest["reviews_tokenizer"]["files"])
    # scikit-learn: tree ensembles to FIL as Treelite checkpoints, the rest through ONNX.
    for name in ("forest", "boosted", "histgb", "legacy"):
        assert results[name].step == "sklearn→fil", (name, results[name].step)
        assert (out / name / "1" / "checkpoint.tl").is_file()
        params = read_config(out / name / "config.pbtxt").parameters
        assert params["model_type"].string_value == "treelite_checkpoint"
    assert results["scaled_logreg"].step == "sklearn→onnx"
    logreg = read_config(out / "scaled_logreg" / "config.pbtxt")
    assert [(t.name, t.data_type) for t in logreg.output] == [
        ("label", mc.TYPE_STRING),
        ("probabilities", mc.TYPE_FP32),
    ]
    # Categorical trees: codes straight into FIL, the names beside it; or strings through a
    # generated preprocessing model.
    for name in ("shops_xgb", "shops_lgb"):
        table = json.loads((out / name / "categories.json").read_text())
        assert table["categorical"]["city"] == {"index": 1, "categories": CITIES}
        strings = read_config(out / f"{name}_s" / "config.pbtxt")
        assert strings.platform == "ensemble"
        assert [(t.name, t.data_type) for t in strings.input] == [
            ("numeric", mc.TYPE_FP32),
            ("categories", mc.TYPE_STRING),
        ]
        assert read_config(out / f"{name}_s_fil" / "config.pbtxt").backend == "fil"
    bert = read_config(out / "bert_cls" / "config.pbtxt")
    assert [t.name for t in bert.output] == ["logits"]  # not linear_13
    assert [t.name for t in bert.input] == ["input_ids", "attention_mask"]


@pytest.mark.server
def test_exports_serve_like_their_frameworks(
    built: tuple[Path, BuildReport],
    exported: dict[str, UserModel],
    hf_folders: dict[str, Path],
    sklearn_models: dict[str, tuple[Path, Any, dict[str, Any]]],
    categorical: dict[str, tuple[Path, Any]],
) -> None:
    import tritonclient.grpc as grpcclient

    from triton_deploy.runtime.server import TritonServer

    out, _ = built

    def iris_inputs(batch: int, seed: int) -> dict[str, np.ndarray]:
        return {"X": np.random.default_rng(seed).standard_normal((batch, 5)).astype(np.float32)}

    def bert_inputs(seq: int) -> Callable[[int, int], dict[str, np.ndarray]]:
        def make(batch: int, seed: int) -> dict[str, np.ndarray]:
            rng = np.random.default_rng(seed)
            mask = np.ones((batch, seq), dtype=np.int64)
            mask[::2, seq // 2 :] = 0
            return {
                "input_ids": rng.integers(1, 120, (batch, seq)).astype(np.int64),
                "attention_mask": mask,
            }

        return make

    with TritonServer(out) as server:
        client = grpcclient.InferenceServerClient(server.grpc_url)
        for name in ("iris_zipmap", "iris_opset22"):
            model = exported[name]

            def as_served(
                feeds: dict[str, np.ndarray], model: UserModel = model
            ) -> dict[str, np.ndarray]:
                return {k: v.reshape(len(v), -1) for k, v in model.reference(feeds).items()}

            check_fresh(client, name, iris_inputs, as_served, atol=1e-5, rtol=1e-4)
        for name, (_, estimator, extras) in sklearn_models.items():
            key = "input__0" if extras.get("backend") == "fil" else "X"

            def rows(batch: int, seed: int, key: str = key) -> dict[str, np.ndarray]:
                x = np.random.default_rng(seed).standard_normal((batch, 6)).astype(np.float32)
                return {key: x}

            def framework(
                feeds: dict[str, np.ndarray], e: Any = estimator, key: str = key
            ) -> dict[str, np.ndarray]:
                x = feeds[key]
                if key == "X":  # ONNX: label and probabilities, as predict/predict_proba
                    label = np.array([[v.encode()] for v in e.predict(x)], dtype=object)
                    return {"label": label, "probabilities": e.predict_proba(x)}
                if hasattr(e, "predict_proba"):
                    return {"output__0": e.predict_proba(x)}
                return {"output__0": e.predict(x).reshape(-1, 1)}

            check_fresh(
                client, name, rows, framework, atol=1e-5, rtol=1e-4, label=f"{name} (sklearn)"
            )
        for name, (_, classifier) in categorical.items():

            def codes(batch: int, seed: int) -> dict[str, np.ndarray]:
                frame = categorical_frame(batch, seed)
                x = frame.assign(city=frame.city.cat.codes).to_numpy(np.float32)
                return {"input__0": x}

            def strings(batch: int, seed: int) -> dict[str, np.ndarray]:
                frame = categorical_frame(batch, seed)
                names = frame.city.astype(str).to_numpy()
                names[::5] = "atlantis"  # unknown: missing, as in the framework
                return {
                    "numeric": frame[["amount", "age"]].to_numpy(np.float32),
                    "categories": np.array([[n.encode()] for n in names], dtype=object),
                }

            def from_codes(
                feeds: dict[str, np.ndarray], m: Any = classifier
            ) -> dict[str, np.ndarray]:
                import pandas as pd

                x = feeds["input__0"]
                frame = pd.DataFrame(
                    {
                        "amount": x[:, 0],
                        "city": pd.Categorical.from_codes(x[:, 1].astype(int), categories=CITIES),
                        "age": x[:, 2],
                    }
                )
                return {"output__0": m.predict_proba(frame)[:, 1:]}

            def from_strings(
                feeds: dict[str, np.ndarray], m: Any = classifier
            ) -> dict[str, np.ndarray]:
                import pandas as pd

                frame = pd.DataFrame(
                    {
                        "amount": feeds["numeric"][:, 0],
                        "city": pd.Categorical(
                            [v.decode() for v in feeds["categories"][:, 0]], categories=CITIES
                        ),
                        "age": feeds["numeric"][:, 1],
                    }
                )
                return {"output__0": m.predict_proba(frame)[:, 1:]}

            check_fresh(
                client, name, codes, from_codes, atol=1e-5, rtol=1e-4, label=f"{name} (codes)"
            )
            check_fresh(
                client,
                f"{name}_s",
                strings,
                from_strings,
                atol=1e-5,
                rtol=1e-4,
                label=f"{name} (strings)",
            )
        for task, folder in hf_folders.items():
            run = hf_reference(folder, task)
            for words in (3, 40):  # two sequence lengths (40 words: truncated at 64 tokens)

                def texts(batch: int, seed: int, words: int = words) -> dict[str, np.ndarray]:
                    vocabulary = " ".join(SENTENCES).split()
                    rng = np.random.default_rng(seed)
                    rows = [" ".join(rng.choice(vocabulary, words)) for _ in range(batch)]
                    return {"text": np.array([[r.encode()] for r in rows], dtype=object)}

                def reference(
                    feeds: dict[str, np.ndarray], run: Any = run
                ) -> dict[str, np.ndarray]:
                    return run([v.decode() for v in feeds["text"][:, 0]])

                check_fresh(
                    client,
                    folder.name,
                    texts,
                    reference,
                    atol=1e-5,
                    rtol=1e-4,
                    label=f"{folder.name} ({task}, {words} words)",
                )
        vendored = [line for line in server.log if "tokenizers 0." in line and "from" in line]
        assert vendored and all("/vendor/tokenizers" in line for line in vendored), vendored
        result = CliRunner().invoke(
            app, ["infer", "reviews", "--url", server.grpc_url, "--text", SENTENCES[1]]
        )
        assert result.exit_code == 0, result.output
        classify = hf_reference(hf_folders["text-classification"], "text-classification")
        label = classify([SENTENCES[1]])["label"][0, 0].decode()
        assert label in result.output  # `tdeploy infer reviews --text ...` prints the label
        bert = exported["bert_cls"]
        for seq in (5, 23):
            check_fresh(
                client,
                "bert_cls",
                bert_inputs(seq),
                bert.reference,
                atol=1e-4,
                rtol=1e-4,
                label=f"bert_cls (seq {seq})",
            )
        client.close()
    print(
        "\nserved vs source framework, fresh inputs, max abs diff:", json.dumps(MEASURED, indent=1)
    )


@pytest.mark.server
def test_plain_torch_onnx_export_goes_init_build_serve_verify_without_edits(
    tmp_path: Path,
) -> None:
    """~32 MB of weights in wide.onnx.data, batch fixed at 2, output 'linear_2': `tdeploy init`
    writes a spec that needs no edit, and the served model batches 1, 7 and 32 rows."""
    import tritonclient.grpc as grpcclient

    from triton_deploy.runtime.server import TritonServer

    files = tmp_path / "export"
    files.mkdir()
    model = make_torch_onnx_default(files)
    (files / "wide_samples.npz").unlink()  # a plain export: no samples either
    assert (files / "wide.onnx.data").stat().st_size > 30 * 2**20
    assert (files / "wide.onnx").stat().st_size < 64 * 2**10
    spec = tmp_path / "project" / "models.yaml"
    runner = CliRunner()
    result = runner.invoke(app, ["init", str(model.path), "--spec", str(spec)])
    assert result.exit_code == 0, result.output
    text = spec.read_text()
    assert "external data" in text and "dynamic_batch: true" in text
    assert "rename: { linear_2: output }" in text
    out = tmp_path / "repo"
    result = runner.invoke(app, ["build", "--spec", str(spec), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert [p.name for p in (out / "wide" / "1").iterdir()] == ["model.onnx"]  # inlined
    config = read_config(out / "wide" / "config.pbtxt")
    assert config.max_batch_size == 64 and [t.name for t in config.output] == ["output"]
    with TritonServer(out) as server:
        result = runner.invoke(app, ["verify", "--url", server.grpc_url, "--repository", str(out)])
        assert result.exit_code == 0, result.output
        client = grpcclient.InferenceServerClient(server.grpc_url)

        def inputs(batch: int, seed: int) -> dict[str, np.ndarray]:
            rng = np.random.default_rng(seed)
            return {"input": rng.standard_normal((batch, 512)).astype(np.float32)}

        worst = check_fresh(client, "wide", inputs, model.reference, atol=1e-5, rtol=1e-4)
        client.close()
    print(f"\nwide (torch.onnx.export defaults): served vs torch, max abs diff {worst:.3g}")


@pytest.mark.server
def test_a_model_over_2_gb_serves_with_its_data_copied_alongside(tmp_path: Path) -> None:
    """One 2.05 GiB initializer in table.bin: the graph cannot be inlined (protobuf's 2 GB),
    so the repository holds model.onnx plus table.bin beside it, byte for byte."""
    import shutil

    import tritonclient.grpc as grpcclient

    from triton_deploy.runtime.server import TritonServer

    if shutil.disk_usage(tmp_path).free < 8 * 2**30:
        pytest.skip("needs 8 GiB of free disk for a 2 GiB model, its copy and the staging")
    files = tmp_path / "files"
    files.mkdir()
    model = make_huge_external_onnx(files)
    spec = tmp_path / "models.yaml"
    spec.write_text(yaml.safe_dump({"models": [spec_entry(model, tmp_path)]}))
    out = tmp_path / "repo"
    report = build_repository(load_spec(spec), out, console=QUIET)
    assert [r.status for r in report.results] == ["OK"], report.results[0].detail
    assert "copied alongside" in report.results[0].detail
    version = out / "huge" / "1"
    assert sorted(p.name for p in version.iterdir()) == ["model.onnx", "table.bin"]
    assert (version / "model.onnx").stat().st_size < 2**20
    assert (version / "table.bin").stat().st_size == (files / "table.bin").stat().st_size
    manifest = json.loads((out / "manifest.json").read_text())["models"]["huge"]["files"]
    assert "huge/1/table.bin" in manifest  # digested like any file of the repository
    picks = np.array([0, 12345, (files / "table.bin").stat().st_size // 4 - 1])

    def inputs(batch: int, seed: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        return {
            "index": rng.choice(picks, (batch, 3)).astype(np.int64),
            "x": rng.standard_normal((batch, 3)).astype(np.float32),
        }

    batches = (1, 7, 8)  # max_batch_size 8 for this one: each request reads 3 floats
    with TritonServer(out) as server:
        client = grpcclient.InferenceServerClient(server.grpc_url)
        for batch in batches:
            feeds = inputs(batch, batch)
            got = infer(client, "huge", feeds, ["picked"])["picked"]
            np.testing.assert_allclose(got, model.reference(feeds)["picked"], atol=0)
        client.close()


def test_generated_models_are_kept_by_a_partial_build_and_listed_in_the_manifest(
    tmp_path: Path,
) -> None:
    """`--only other` keeps a model's generated companions (here: the preprocessing model and
    the FIL model of `categorical: strings`), files and manifest entries alike."""
    from usermodels import make_two_input_onnx

    made = make_categorical_trees(tmp_path)
    pair = make_two_input_onnx(tmp_path)
    spec = tmp_path / "models.yaml"
    entries = [
        {"name": "shops", "source": str(made["shops_xgb"][0]), "categorical": "strings"},
        spec_entry(pair, tmp_path),
    ]
    spec.write_text(yaml.safe_dump({"models": entries}))
    out = tmp_path / "repo"
    assert not build_repository(load_spec(spec), out, console=QUIET).failed
    companions = ["shops_categories", "shops_fil"]
    manifest = json.loads((out / "manifest.json").read_text())["models"]
    assert [manifest[c]["companion_of"] for c in companions] == ["shops", "shops"]
    before = {c: sorted(manifest[c]["files"]) for c in companions}
    report = build_repository(load_spec(spec), out, only={"pair"}, console=QUIET)
    assert not report.failed and [r.model for r in report.results] == ["pair"]
    manifest = json.loads((out / "manifest.json").read_text())["models"]
    for companion in companions:
        assert (out / companion / "config.pbtxt").is_file()
        assert sorted(manifest[companion]["files"]) == before[companion]

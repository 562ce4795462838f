"""The built example repository: committed configs, determinism, manifest, incremental builds."""

import json
from pathlib import Path

from rich.console import Console

from triton_deploy.build.pipeline import MANIFEST, build_repository
from triton_deploy.build.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "model_repository"
QUIET = Console(stderr=True, quiet=True)


def _generated_text_files(repository: Path) -> dict[str, str]:
    files = [*sorted(repository.glob("*/config.pbtxt")), repository / "build_plans.sh"]
    return {str(p.relative_to(repository)): p.read_text() for p in files}


def test_committed_configs_match_the_spec(model_repository: Path) -> None:
    generated = _generated_text_files(model_repository)
    committed = _generated_text_files(COMMITTED)
    assert sorted(generated) == sorted(committed), (
        "run `tdeploy build` and commit model_repository/"
    )
    stale = [name for name in generated if generated[name] != committed[name]]
    assert not stale, f"committed {stale} differ from the spec: run `tdeploy build` and commit"


def test_same_spec_and_seed_give_identical_configs(model_repository: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    report = build_repository(load_spec(ROOT / "build/models.yaml"), again, console=QUIET)
    assert not report.failed
    assert _generated_text_files(again) == _generated_text_files(model_repository)
    first = json.loads((model_repository / MANIFEST).read_text())["models"]
    second = json.loads((again / MANIFEST).read_text())["models"]
    # Training is seeded and single-threaded: the weights are bit-for-bit identical too.
    assert first["ctr_xgb"]["files"] == second["ctr_xgb"]["files"]
    assert first["digits_cnn"]["parity"] == second["digits_cnn"]["parity"]


def test_manifest_records_files_versions_and_parity(model_repository: Path) -> None:
    manifest = json.loads((model_repository / MANIFEST).read_text())
    assert {"torch", "onnx", "onnxruntime", "xgboost"} <= set(manifest["frameworks"])
    models = manifest["models"]
    cnn = models["digits_cnn"]
    assert cnn["version"] == 1 and cnn["source"] == "recipe:digits/digits_cnn.pt2"
    assert cnn["format"] == "torch_export" and cnn["converter"] == "pt2→onnx"
    assert cnn["samples"].startswith("recipe:digits/pixels.npz (360 rows)")
    assert cnn["parity"]["passed"] and cnn["parity"]["max_abs_diff"] <= cnn["parity"]["atol"]
    assert cnn["metrics"]["heldout_accuracy"] >= 0.95
    assert len(cnn["files"]["digits_cnn/1/model.onnx"]["sha256"]) == 64
    assert "digits_cnn/golden.npz" in cnn["files"]
    xgb = models["ctr_xgb"]
    assert xgb["parity"]["passed"] and "ctr_xgb/1/xgboost.json" in xgb["files"]
    assert models["digits_cnn_trt"]["status"] in {"SKIPPED", "OK"}
    assert "vocabulary.json" in " ".join(models["ctr_features"]["files"])


def test_xgboost_model_has_enough_trees(model_repository: Path) -> None:
    model = json.loads((model_repository / "ctr_xgb/1/xgboost.json").read_text())
    trees = model["learner"]["gradient_booster"]["model"]["trees"]
    assert len(trees) >= 200


def test_second_build_is_up_to_date_and_a_change_rebuilds(
    model_repository: Path, tmp_path: Path
) -> None:
    spec = load_spec(ROOT / "build/models.yaml")
    report = build_repository(spec, model_repository, console=QUIET)
    assert report.up_to_date
    (model_repository / "ctr_xgb/1/xgboost.json").write_bytes(
        (model_repository / "ctr_xgb/1/xgboost.json").read_bytes()
    )  # same bytes: still up to date
    assert build_repository(spec, model_repository, console=QUIET).up_to_date
    partial = build_repository(spec, model_repository, only={"ctr_features"}, console=QUIET)
    # The ensemble using ctr_features is rebuilt with it (its golden case depends on it), and so
    # is the ensemble's other member; the digits family is kept as it was.
    assert sorted(r.model for r in partial.results) == ["ctr", "ctr_features", "ctr_xgb"]
    assert all(r.status == "OK" for r in partial.results)
    assert (model_repository / "digits_cnn/1/model.onnx").is_file()
    assert not build_repository(spec, model_repository, console=QUIET).up_to_date

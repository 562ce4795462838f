from pathlib import Path

import pytest
import yaml

from triton_deploy.build.spec import BuildSpec, load_spec
from triton_deploy.errors import SpecError

ROOT = Path(__file__).resolve().parents[2]


def _spec_with(tmp_path: Path, mutate) -> Path:  # type: ignore[no-untyped-def]
    data = yaml.safe_load((ROOT / "build" / "models.yaml").read_text())
    mutate(data)
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_example_spec_is_valid() -> None:
    spec = load_spec(ROOT / "build" / "models.yaml")
    assert {m.name for m in spec.models} >= {"digits_cnn", "ctr_xgb", "digits_cnn_trt"}
    assert {e.name for e in spec.ensembles} == {"digits", "ctr"}


@pytest.mark.parametrize(
    ("mutate", "key", "reason"),
    [
        (
            lambda d: d["models"][0].update(max_batch_size=-1),
            "models[0] (digits_cnn).max_batch_size",
            "greater than or equal to 0",
        ),
        (
            lambda d: d["models"][0].update(max_batch_sise=8),
            "models[0] (digits_cnn).max_batch_sise",
            "Extra inputs are not permitted",
        ),
        (
            lambda d: d["models"][0].update(backend="pytorch"),
            "models[0] (digits_cnn).backend",
            "Input should be",
        ),
        (lambda d: d["models"][0].pop("source"), "models[0] (digits_cnn)", "give one of"),
        (
            lambda d: d["models"][0]["dynamic_batching"].update(preferred_batch_size=[128]),
            "models[0] (digits_cnn)",
            "exceeds max_batch_size",
        ),
        (
            lambda d: d["models"][2]["inputs"][0].update(dtype="UINT9"),
            "models[2] (digits_preprocess).inputs[0] (IMAGES).dtype",
            "Input should be",
        ),
        (
            lambda d: d["models"][2]["inputs"][0].update(dims=[8, 0]),
            "models[2] (digits_preprocess).inputs[0] (IMAGES).dims",
            "positive or -1",
        ),
        (
            lambda d: d["ensembles"][0]["steps"][0].update(model="nope"),
            "(top level)",
            "step model 'nope' is not declared",
        ),
        (
            lambda d: d["models"].append(dict(d["models"][0])),
            "(top level)",
            "duplicate model names: ['digits_cnn']",
        ),
        (
            lambda d: d["models"][1].update(onnx_from="ctr_xgb"),
            "(top level)",
            "is not an onnxruntime model",
        ),
    ],
)
def test_bad_spec_names_file_key_and_reason(tmp_path: Path, mutate, key: str, reason: str) -> None:  # type: ignore[no-untyped-def]
    path = _spec_with(tmp_path, mutate)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert f"{path}: {key}" in message
    assert reason in message


def test_unreadable_specs(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("models: [\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(broken)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(SpecError, match="must be a mapping"):
        load_spec(scalar)


def test_fingerprint_changes_with_the_spec() -> None:
    spec = load_spec(ROOT / "build" / "models.yaml")

    def again(data: dict) -> BuildSpec:  # type: ignore[type-arg]
        return BuildSpec.model_validate(data).located(spec.path, spec.base)

    assert spec.fingerprint() != again(spec.model_dump() | {"seed": spec.seed + 1}).fingerprint()
    assert spec.fingerprint() == again(spec.model_dump()).fingerprint()
    # The same spec in another folder points at other files.
    moved = BuildSpec.model_validate(spec.model_dump()).located(None, spec.base.parent)
    assert moved.fingerprint() != spec.fingerprint()


def test_the_readme_spec_examples_are_valid() -> None:
    import re

    readme = "\n".join(  # the README and the documentation guides it links to
        p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs/guides").glob("*.md"))]
    )
    blocks = re.findall(r"```yaml\n(.*?)```", readme, flags=re.S)
    specs = [yaml.safe_load(b) for b in blocks if "models:" in b]
    assert len(specs) >= 2
    for data in specs:
        data.setdefault("recipes", [])
        if (
            any(str(m.get("source", "")).startswith("recipe:") for m in data["models"])
            and not data["recipes"]
        ):
            continue
        BuildSpec.model_validate(data)

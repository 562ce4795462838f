"""The chart's verify-repository init container runs the same verification as `tdeploy serve`:
its rendered command, run here (paths mapped onto a local copy), passes a good repository and
refuses a tampered one, another build than the pinned one, and a signature from another key."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from charttools import container, deployment, objects, render, scenario_values
from rich.console import Console

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "build"))
sys.path.insert(0, str(TESTS / "repository"))
from keys import key_pair  # noqa: E402
from usermodels import make_two_input_onnx, spec_entry  # noqa: E402

from triton_deploy.build.pipeline import build_repository  # noqa: E402
from triton_deploy.build.spec import load_spec  # noqa: E402
from triton_deploy.repository import manifest_digest, sign_repository  # noqa: E402

TDEPLOY = str(Path(sys.executable).with_name("tdeploy"))


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A built, signed repository, the public key, and another key pair's public key."""
    base = tmp_path_factory.mktemp("chart-repository")
    spec = {"models": [spec_entry(make_two_input_onnx(base), base)]}
    (base / "models.yaml").write_text(yaml.safe_dump(spec))
    out = base / "model_repository"
    report = build_repository(
        load_spec(base / "models.yaml"), out, console=Console(stderr=True, quiet=True)
    )
    assert report.swapped and not report.failed
    private, public = key_pair(base, "release")
    _, other = key_pair(base, "other")
    sign_repository(out, private_key=private)
    return out, public, other


def _values(source: str, **extra: Any) -> dict[str, Any]:
    values = scenario_values("cpu-staging")  # blue from a PVC
    repo = values["blue"]["modelRepository"]
    if source == "sync":
        repo.update(source="sync", uri="s3://ml-models/triton/build-42")
    elif source == "objectStorage":
        repo.update(source="objectStorage", uri="s3://ml-models/triton/build-42")
    for key, value in extra.items():
        if key == "manifestDigest":
            repo["manifestDigest"] = value
        else:
            values.setdefault("signing", {})[key] = value
    return values


def _init(chart: helm_python.Chart, values: dict[str, Any]) -> tuple[dict[str, Any], dict]:
    docs = objects(render(chart, values))
    check = container(deployment(docs, "blue"), "verify-repository")
    configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    return check, configmaps


def _run(check: dict[str, Any], configmaps: dict, repository: Path, tmp: Path) -> tuple[int, str]:
    """The init container's command with its mounts mapped onto local folders."""
    mounts = {}
    for mount in check["volumeMounts"]:
        if mount["name"] == "model-repository":
            mounts[mount["mountPath"]] = str(repository)
        elif mount["name"] == "signing":
            folder = tmp / "signing"
            folder.mkdir(exist_ok=True)
            (data,) = [c["data"] for n, c in configmaps.items() if n.endswith("-signing")]
            for name, text in data.items():
                (folder / name).write_text(text)
            mounts[mount["mountPath"]] = str(folder)
    command = list(check["command"])
    assert command[0] == "tdeploy"
    command[0] = TDEPLOY
    for i, arg in enumerate(command):
        for inside, outside in mounts.items():
            if arg == inside or arg.startswith(inside + "/"):
                command[i] = outside + arg[len(inside) :]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    return done.returncode, " ".join((done.stdout + done.stderr).split())


@pytest.mark.parametrize("source", ["pvc", "sync"])
def test_the_check_runs_before_plans_and_triton(chart: helm_python.Chart, source: str) -> None:
    docs = objects(render(chart, _values(source)))
    spec = deployment(docs, "blue")["spec"]["template"]["spec"]
    names = [c["name"] for c in spec["initContainers"]]
    assert names[-1] == "verify-repository" and names[:-1] == (
        ["model-sync"] if source == "sync" else []
    )
    check = container(deployment(docs, "blue"), "verify-repository")
    assert check["command"] == ["tdeploy", "verify-repository", "/models"]
    assert check["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert {m["mountPath"]: m.get("readOnly") for m in check["volumeMounts"]}["/models"] is True


def test_no_copy_no_check_and_a_pin_needs_a_copy(chart: helm_python.Chart) -> None:
    docs = objects(render(chart, _values("objectStorage")))
    spec = deployment(docs, "blue")["spec"]["template"]["spec"]
    assert "verify-repository" not in [c["name"] for c in spec.get("initContainers", [])]
    with pytest.raises(Exception, match=r'source is \\?"objectStorage'):
        render(chart, _values("objectStorage", manifestDigest="sha256:" + "0" * 64))


def test_the_image_is_configurable_and_pinned_by_digest(chart: helm_python.Chart) -> None:
    values = _values("pvc")
    digest = "sha256:" + "b" * 64
    values["repositoryCheck"] = {
        "image": {"repository": "registry.example/tdeploy", "tag": "1.2", "digest": digest}
    }
    check, _ = _init(chart, values)
    assert check["image"] == f"registry.example/tdeploy:1.2@{digest}"


def test_rendered_command_passes_a_good_repository_and_refuses_a_tampered_one(
    chart: helm_python.Chart, signed: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    built, public, _ = signed
    repository = tmp_path / "models"
    shutil.copytree(built, repository)
    digest = manifest_digest(repository)
    check, configmaps = _init(
        chart, _values("sync", manifestDigest=digest, publicKey=public.read_text())
    )
    assert "--require-signature" in check["command"]
    code, output = _run(check, configmaps, repository, tmp_path)
    assert code == 0, output
    assert "files match the manifest" in output and "signature verified (public key)" in output
    config = repository / "pair" / "config.pbtxt"
    config.write_text(config.read_text() + "# edited\n")
    code, output = _run(check, configmaps, repository, tmp_path)
    assert code == 1 and "error:" in output and "Traceback" not in output
    assert "pair/config.pbtxt: changed since the build (manifest sha256" in output


def test_rendered_command_refuses_another_build_and_another_key(
    chart: helm_python.Chart, signed: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    built, _, other = signed
    repository = tmp_path / "models"
    shutil.copytree(built, repository)
    pinned, _ = _init(chart, _values("pvc", manifestDigest="sha256:" + "0" * 64))
    code, output = _run(pinned, {}, repository, tmp_path)
    assert code == 1 and "this is not the pinned repository" in output
    keyed, configmaps = _init(chart, _values("pvc", publicKey=other.read_text()))
    code, output = _run(keyed, configmaps, repository, tmp_path)
    assert code == 1 and "the signature does not verify" in output

"""`tdeploy verify` against a served repository whose model was changed after the build: it
must fail (exit 1) on exactly the changed models, through TLS and the restricted-protocol header
the chart's staging endpoint uses, and pass the untouched ones."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import text_format
from tlstools import make_tls_files
from typer.testing import CliRunner

from triton_deploy.build.spec import load_spec
from triton_deploy.build.verify import verify_server
from triton_deploy.cli import app
from triton_deploy.errors import VerificationError
from triton_deploy.runtime.repository import read_config
from triton_deploy.runtime.server import TritonServer, free_port

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "build" / "models.yaml"
KEY_HEADER = "triton-grpc-protocol-verify-key"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def changed_server(
    model_repository: Path, tmp_path_factory: pytest.TempPathFactory, tls: dict[str, Path]
) -> Iterator[tuple[TritonServer, Path]]:
    """The built repository with ctr_xgb changed to answer class labels instead of
    probabilities (predict_proba false), served with mutual TLS and a restricted protocol."""
    copy = tmp_path_factory.mktemp("changed") / "model_repository"
    shutil.copytree(model_repository, copy)
    config = read_config(copy / "ctr_xgb" / "config.pbtxt")
    config.parameters["predict_proba"].string_value = "false"
    (copy / "ctr_xgb" / "config.pbtxt").write_text(text_format.MessageToString(config))
    args = [
        "--grpc-use-ssl-mutual=true",
        f"--grpc-server-cert={tls['server_crt']}",
        f"--grpc-server-key={tls['server_key']}",
        f"--grpc-root-cert={tls['ca_crt']}",
        "--grpc-restricted-protocol=inference:verify-key=s3cret",
    ]
    with TritonServer(copy, extra_args=args) as server:
        yield server, copy


def tls_args(tls: dict[str, Path]) -> list[str]:
    return ["--ca", str(tls["ca_crt"]), "--cert", str(tls["client_crt"]), "--key", str(tls["client_key"])]  # fmt: skip


def test_a_changed_model_fails_verification_and_the_others_pass(
    changed_server: tuple[TritonServer, Path], tls: dict[str, Path]
) -> None:
    server, repository = changed_server
    result = CliRunner().invoke(
        app,
        [
            "verify",
            "--url",
            server.grpc_url,
            "--repository",
            str(repository),
            "--spec",
            str(SPEC),
            "-H",
            f"{KEY_HEADER}=s3cret",
            *tls_args(tls),
        ],
        env={"COLUMNS": "250"},
    )
    assert result.exit_code == 1, result.output
    assert result.output.splitlines()[-1] == "error: verification failed for ctr, ctr_xgb"
    report = verify_server(
        server.grpc_url,
        repository,
        load_spec(SPEC),
        headers={KEY_HEADER: "s3cret"},
        root_certificates=tls["ca_crt"],
        certificate_chain=tls["client_crt"],
        private_key=tls["client_key"],
    )
    assert report.failed_models == ["ctr", "ctr_xgb"]
    passed = {r.model for r in report.rows if r.passed and r.note != "skipped"}
    assert {
        "digits",
        "digits_cnn",
        "digits_preprocess",
        "digits_postprocess",
        "ctr_features",
    } <= passed
    failed = [r for r in report.rows if r.model == "ctr_xgb"]
    # labels instead of probabilities: far beyond the 1e-5 tolerance
    assert failed and not failed[0].passed and failed[0].max_abs_diff > 1e-3


def test_without_the_header_every_request_is_refused_and_said_so(
    changed_server: tuple[TritonServer, Path], tls: dict[str, Path]
) -> None:
    server, repository = changed_server
    report = verify_server(
        server.grpc_url,
        repository,
        load_spec(SPEC),
        models=["digits_cnn"],
        root_certificates=tls["ca_crt"],
        certificate_chain=tls["client_crt"],
        private_key=tls["client_key"],
    )
    [row] = report.rows
    assert not row.passed and "permission denied" in row.note and KEY_HEADER in row.note


def test_an_unreachable_server_is_a_verification_error(model_repository: Path) -> None:
    with pytest.raises(VerificationError, match="cannot reach a Triton server at"):
        verify_server(f"127.0.0.1:{free_port()}", model_repository, load_spec(SPEC), timeout=1)
    result = CliRunner().invoke(
        app,
        [
            "verify",
            "--url",
            f"127.0.0.1:{free_port()}",
            "--repository",
            str(model_repository),
            "--spec",
            str(SPEC),
            "--timeout",
            "1",
        ],
    )
    assert result.exit_code == 1
    assert result.output.startswith("error: cannot reach a Triton server at 127.0.0.1:")

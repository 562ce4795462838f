"""Resource failures in serve: one `error:` line naming the path and the cause, exit code 1,
nothing left running (see tests/build/test_resource_errors.py for the build's)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from servingtools import python_model

from triton_deploy.errors import ServerStartError

TDEPLOY = str(Path(sys.executable).parent / "tdeploy")


@pytest.mark.server
def test_a_model_folder_that_disappears_while_serve_loads_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from triton_deploy.runtime import server as server_module
    from triton_deploy.runtime.server import TritonServer

    repository = tmp_path / "repo"
    python_model(repository, "stays")
    python_model(repository, "vanishes")
    real = server_module.prepare_backend_directory

    def prepare_then_delete(*args: object, **kwargs: object) -> Path:
        shutil.rmtree(repository / "vanishes")  # after serve read it, before Triton loads
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(server_module, "prepare_backend_directory", prepare_then_delete)
    server = TritonServer(repository)
    with pytest.raises(ServerStartError) as caught:
        server.start()
    message = str(caught.value)
    assert message.splitlines()[0] == (
        f"not every model loaded: {repository / 'vanishes'}: no such file or directory "
        "(removed while loading)"
    )
    assert server.pid is None  # stopped, cleaned up


def test_serve_says_when_the_repository_is_unreadable(tmp_path: Path) -> None:
    """Permission denied, as a user without access sees it (root reads anything: the test
    drops to the nobody user when it runs as root)."""
    repository = tmp_path / "repo"
    python_model(repository, "echo")
    (repository / "echo").chmod(0o000)
    os.chmod(tmp_path, 0o755)
    command = [TDEPLOY, "serve", "--repository", str(repository), "--max-inflight", "0"]
    setpriv = shutil.which("setpriv")
    if os.geteuid() == 0:
        if setpriv is None:
            pytest.skip("root reads every file and setpriv is missing to drop privileges")
        command = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    try:
        run = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=120,
            env=os.environ | {"COLUMNS": "300", "HOME": str(tmp_path)},
            cwd=tmp_path,
        )
    finally:
        (repository / "echo").chmod(0o755)
    if (
        "Permission denied" in run.stderr
        and "python" in run.stderr.lower()
        and "error:" not in run.stderr
    ):
        pytest.skip(f"the nobody user cannot run this venv: {run.stderr[-300:]}")
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    (error,) = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    # the first path the server's reading was refused on (the folder, or the model in it)
    assert str(repository) in error and "permission denied" in error.lower(), error

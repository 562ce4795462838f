"""Resource failures in build and serve: one `error:` line naming the path and the cause, exit
code 1, no traceback, the previous repository untouched, no staging debris.

Disk full is a real small tmpfs: the build runs in a mount namespace of its own
(``unshare -m`` as root, else ``unshare -rm`` as a mapped root in a user namespace), where a
3 MB tmpfs holds the previous repository and a filler file that leaves a few kB free. Where
neither can mount (no user namespaces, no privilege), the test is skipped, saying so.
Out of file descriptors is a real ``RLIMIT_NOFILE`` on the process. A model folder that
disappears while the server loads is really deleted, at the moment between serve reading the
repository and Triton loading it (forced there: the race itself cannot be timed).
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from rich.console import Console
from test_byo_errors import tree_digest
from usermodels import make_two_input_onnx

from triton_deploy.build.pipeline import build_repository
from triton_deploy.build.spec import load_spec
from triton_deploy.errors import ResourceError
from triton_deploy.resources import resource_error

TDEPLOY = str(Path(sys.executable).parent / "tdeploy")
QUIET = Console(stderr=True, quiet=True)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A spec with one ONNX model, and a repository already built from it (the previous one)."""
    folder = tmp_path_factory.mktemp("project")
    make_two_input_onnx(folder)
    spec = {"models": [{"name": "pair", "source": "pair.onnx", "samples": "pair_samples.npz"}]}
    (folder / "models.yaml").write_text(yaml.safe_dump(spec))
    out = folder / "previous"
    assert build_repository(load_spec(folder / "models.yaml"), out, console=QUIET).swapped
    return folder, out


def _namespace_command() -> list[str] | None:
    """A command prefix that gives the process a private mount namespace where it may mount
    a tmpfs, or None."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    for prefix in ([unshare, "-m"], [unshare, "-rm"]):
        probe = subprocess.run(
            [
                *prefix,
                "sh",
                "-c",
                "mount -t tmpfs -o size=1m tmpfs /mnt 2>/dev/null || "
                'mount -t tmpfs -o size=1m tmpfs "$TMPDIR"',
            ],
            capture_output=True,
            env=os.environ | {"TMPDIR": "/tmp"},
        )
        if probe.returncode == 0:
            return prefix
    return None


DISK_FULL = r"""
set -u
mount -t tmpfs -o size=3m tmpfs "$DISK"
cp -a "$PREVIOUS" "$DISK/repo"
free=$(stat -f -c '%a * %S' "$DISK")
head -c $(( $free - 16384 )) /dev/zero > "$DISK/filler"
find "$DISK/repo" -type f -exec sha256sum {} + | sort > "$WORK/before"
"$TDEPLOY" build --spec "$SPEC" --out "$DISK/repo" --force > "$WORK/stdout" 2> "$WORK/stderr"
echo $? > "$WORK/rc"
find "$DISK/repo" -type f -exec sha256sum {} + | sort > "$WORK/after"
(cd "$DISK" && find . -mindepth 1 -maxdepth 1 | sort) > "$WORK/top"
"""


def test_disk_full_build_gives_one_error_line_and_leaves_nothing(
    project: tuple[Path, Path], tmp_path: Path
) -> None:
    prefix = _namespace_command()
    if prefix is None:
        pytest.skip("cannot mount a tmpfs here (no root, no user namespaces): disk full untested")
    folder, previous = project
    disk = tmp_path / "disk"
    disk.mkdir()
    env = os.environ | {
        "DISK": str(disk),
        "PREVIOUS": str(previous),
        "WORK": str(tmp_path),
        "SPEC": str(folder / "models.yaml"),
        "TDEPLOY": TDEPLOY,
        "COLUMNS": "300",
    }
    run = subprocess.run([*prefix, "sh", "-c", DISK_FULL], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    stderr = (tmp_path / "stderr").read_text()
    assert (tmp_path / "rc").read_text().strip() == "1", stderr
    assert "Traceback" not in stderr and "Traceback" not in (tmp_path / "stdout").read_text()
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    assert "no space left on the device (disk full)" in errors[0]
    assert str(disk) in errors[0] and "is left as it was" in errors[0]
    # the previous repository, byte for byte; and only it and the filler: no staging debris
    assert (tmp_path / "before").read_text() == (tmp_path / "after").read_text()
    assert (tmp_path / "top").read_text().split() == ["./filler", "./repo"]


def test_out_of_file_descriptors_is_one_error_line(
    project: tuple[Path, Path], tmp_path: Path
) -> None:
    folder, previous = project
    out = tmp_path / "repo"
    shutil.copytree(previous, out)
    before = tree_digest(out)
    for limit in (16, 12, 10, 9, 8, 7):  # low enough that the build runs out (Python needs ~6)

        def limited(limit: int = limit) -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        run = subprocess.run(
            [TDEPLOY, "build", "--spec", str(folder / "models.yaml"), "--out", str(out), "--force"],
            capture_output=True,
            text=True,
            preexec_fn=limited,
            env=os.environ | {"COLUMNS": "300"},
        )
        if "too many open files" in run.stderr:
            break
    else:
        pytest.skip(f"the build never ran out of file descriptors: {run.stderr[-500:]}")
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    (error,) = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert f"too many open files (this process's limit: {limit})" in error
    assert tree_digest(out) == before
    assert not list(tmp_path.glob(".repo.tdeploy-build-*"))


def test_resource_error_finds_the_os_error_behind_a_library_error(tmp_path: Path) -> None:
    """What zipfile does on a full disk: the write fails, closing the archive then raises."""
    try:
        try:
            raise OSError(28, "No space left on device")
        except OSError:
            raise ValueError("seek of closed file")  # noqa: B904 (as zipfile does)
    except ValueError as exc:
        error = resource_error(exc, where=tmp_path)
    assert isinstance(error, ResourceError)
    assert str(error).startswith(f"{tmp_path}: no space left on the device (disk full)")
    denied = resource_error(PermissionError(13, "Permission denied", "/srv/models/m/1"))
    assert str(denied) == (
        "/srv/models/m/1: permission denied: check the owner and mode of the path"
    )

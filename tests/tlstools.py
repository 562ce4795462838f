"""Test certificates, for the client, verify and load-test tests (needs the openssl command)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def make_tls_files(directory: Path) -> dict[str, Path]:
    """A CA, a server and a client certificate signed by it (for 127.0.0.1 and localhost), and
    a second CA that signed nothing: ``{"ca_crt", "ca_key", "server_crt", "server_key",
    "client_crt", "client_key", "other_ca_crt"}``. Needs the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make test certificates")
    directory.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    for ca in ("ca", "other_ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", f"/CN=tdeploy-test-{ca}", "-keyout", f"{ca}.key", "-out", f"{ca}.crt")  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr")  # fmt: skip
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", f"{name}.crt")  # fmt: skip
    return {p.stem + p.suffix.replace(".", "_"): p for p in directory.iterdir()}

"""Options shared by ``tdeploy`` commands: one definition, one help text, one environment
variable per setting.

    from triton_deploy.cli_options import Ca, Cert, Headers, Key, Timeout, Tls, Token, Url
    from triton_deploy.cli_options import connection

    def my_command(url: Url = DEFAULT_URL, timeout: Timeout = DEFAULT_TIMEOUT_S,
                   header: Headers = None, token: Token = None, tls: Tls = False,
                   ca: Ca = None, cert: Cert = None, key: Key = None) -> None:
        with InferenceClient(url, **connection(timeout, header, token, tls, ca, cert, key)) as c:
            ...

Commands live in ``cli_<area>.py`` and are registered in ``cli._register_sub_commands``; they
raise ``TritonDeployError`` (``UsageError`` for bad input) and the app turns it into one
``error: ...`` line and exit code 1 (see ``cli.py``).

| setting      | option                  | environment variable   |
|--------------|-------------------------|------------------------|
| endpoint     | ``--url``               | ``TDEPLOY_URL``        |
| deadline     | ``--timeout``           | ``TDEPLOY_TIMEOUT``    |
| metadata     | ``-H/--header N=V``     | ``TDEPLOY_HEADERS`` (``N=V,N=V``) |
| bearer token | ``--token``             | ``TDEPLOY_TOKEN``      |
| TLS          | ``--tls``               | ``TDEPLOY_TLS``        |
| TLS files    | ``--ca --cert --key``   | ``TDEPLOY_CA``, ``TDEPLOY_CERT``, ``TDEPLOY_KEY`` |
| repository   | ``--repository``        | ``TDEPLOY_REPOSITORY`` |
| build spec   | ``--spec``              | ``TDEPLOY_SPEC``       |
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from triton_deploy.defaults import DEFAULT_TIMEOUT_S, DEFAULT_URL

__all__ = [
    "DEFAULT_REPOSITORY",
    "DEFAULT_SPEC",
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_URL",
    "HEADERS_ENV",
    "Ca",
    "Cert",
    "Headers",
    "Json",
    "Key",
    "Repository",
    "Spec",
    "Timeout",
    "Tls",
    "Token",
    "Url",
    "connection",
    "parse_headers",
]

HEADERS_ENV = "TDEPLOY_HEADERS"
DEFAULT_SPEC: Path | None = None  # ./models.yaml, else ./build/models.yaml (find_spec)
DEFAULT_REPOSITORY = Path("model_repository")


Url = Annotated[
    str, typer.Option("--url", help="Triton's gRPC endpoint, host:port.", envvar="TDEPLOY_URL")
]
Timeout = Annotated[
    float,
    typer.Option(
        "--timeout",
        help="Deadline of each call in seconds (retries included).",
        envvar="TDEPLOY_TIMEOUT",
    ),
]
Headers = Annotated[
    list[str] | None,
    typer.Option(
        "--header",
        "-H",
        metavar="NAME=VALUE",
        help="gRPC metadata sent with every call (repeatable). Default: $TDEPLOY_HEADERS, "
        "NAME=VALUE,NAME=VALUE.",
        show_default=False,
    ),
]
Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="Bearer token, sent as 'authorization: Bearer TOKEN' (prefer the environment "
        "variable: a command line is visible to other users).",
        envvar="TDEPLOY_TOKEN",
        show_default=False,
    ),
]
Tls = Annotated[
    bool,
    typer.Option(
        "--tls/--no-tls",
        help="Connect with TLS (the system's CAs unless --ca). --ca, --cert or --key imply it.",
        envvar="TDEPLOY_TLS",
    ),
]
Ca = Annotated[
    Path | None,
    typer.Option(
        "--ca",
        help="TLS: PEM file of the CA(s) that signed the server's certificate.",
        envvar="TDEPLOY_CA",
        show_default=False,
    ),
]
Cert = Annotated[
    Path | None,
    typer.Option(
        "--cert",
        help="TLS: client certificate chain (PEM), for servers that ask for one (with --key).",
        envvar="TDEPLOY_CERT",
        show_default=False,
    ),
]
Key = Annotated[
    Path | None,
    typer.Option(
        "--key",
        help="TLS: the client certificate's private key (PEM), with --cert.",
        envvar="TDEPLOY_KEY",
        show_default=False,
    ),
]
Repository = Annotated[
    Path,
    typer.Option("--repository", help="The model repository.", envvar="TDEPLOY_REPOSITORY"),
]
Spec = Annotated[
    Path | None,
    typer.Option(
        "--spec",
        help="The build spec [default: ./models.yaml, else ./build/models.yaml].",
        envvar="TDEPLOY_SPEC",
        show_default=False,
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of a table.")]


def parse_headers(items: Sequence[str] | None, option: str = "--header") -> dict[str, str]:
    """``["name=value", ...]`` -> a dict; ``UsageError`` names an item without ``=``. Without
    items: ``$TDEPLOY_HEADERS`` (``name=value,name=value``; click would split an environment
    variable of a repeatable option on whitespace, cutting ``authorization=Bearer x`` in two)."""
    if not items and os.environ.get(HEADERS_ENV, "").strip():
        items = [i for i in os.environ[HEADERS_ENV].split(",") if i.strip()]
        option = HEADERS_ENV
    headers: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            from triton_deploy.clients import UsageError  # the client only when it is needed

            raise UsageError(f"{option} takes NAME=VALUE, got {item!r}")
        headers[name.strip()] = value
    return headers


def connection(
    timeout: float,
    header: Sequence[str] | None,
    token: str | None,
    tls: bool,
    ca: Path | None,
    cert: Path | None,
    key: Path | None,
) -> dict[str, Any]:
    """``InferenceClient`` keyword arguments from the shared options (checked by the client)."""
    headers = parse_headers(header)
    if token:
        headers["authorization"] = f"Bearer {token}"
    return {
        "timeout": timeout,
        "headers": headers,
        "ssl": tls,
        "root_certificates": ca,
        "certificate_chain": cert,
        "private_key": key,
    }

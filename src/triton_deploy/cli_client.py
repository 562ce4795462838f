"""``tdeploy infer`` and ``tdeploy health``: the client library at the command line.

Registered on the main app by ``cli.py`` (``app.command()(infer)``, ``app.command()(health)``).
Both are thin wrappers over ``triton_deploy.clients``; the app turns a ``TritonDeployError``
into a one-line message on stderr and exit code 1.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from triton_deploy.cli_options import (
    DEFAULT_TIMEOUT_S,
    DEFAULT_URL,
    Ca,
    Cert,
    Headers,
    Json,
    Key,
    Timeout,
    Tls,
    Token,
    Url,
    connection,
)
from triton_deploy.errors import TritonDeployError

if TYPE_CHECKING:
    import numpy.typing as npt

    from triton_deploy.clients import HealthReport

    Array = npt.NDArray[Any]

__all__ = ["health", "infer"]


def infer(
    model: Annotated[str, typer.Argument(help="Model to call, e.g. digits, ctr, ctr_xgb.")],
    inputs: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            "-i",
            metavar="NAME=FILE.npy",
            help="An input tensor from a .npy file (repeatable). Any batch size: large batches "
            "are split into max_batch_size chunks.",
        ),
    ] = None,
    impressions: Annotated[
        Path | None,
        typer.Option(
            help="A JSON file holding a list of records whose fields are the model's inputs "
            "(e.g. ctr impressions); the arrays are built from the model's metadata.",
        ),
    ] = None,
    texts: Annotated[
        list[str] | None,
        typer.Option(
            "--text",
            "-t",
            help="A string for a model whose one input is text (BYTES), e.g. a Hugging Face "
            "classifier built by tdeploy (repeatable: one row each).",
        ),
    ] = None,
    outputs: Annotated[
        list[str] | None, typer.Option("--output", "-o", help="Return only these outputs.")
    ] = None,
    version: Annotated[str, typer.Option(help="Model version; default: the server's choice.")] = "",
    url: Url = DEFAULT_URL,
    timeout: Timeout = DEFAULT_TIMEOUT_S,
    header: Headers = None,
    token: Token = None,
    tls: Tls = False,
    ca: Ca = None,
    cert: Cert = None,
    key: Key = None,
    limit: Annotated[int, typer.Option(help="Rows shown in the table.")] = 20,
    as_json: Json = False,
) -> None:
    """Run a model on inputs from .npy files or JSON records and print its outputs.

    [dim]tdeploy infer digits --input IMAGES=images.npy
    tdeploy infer ctr --impressions build/examples/ctr/impressions.json --json
    tdeploy infer reviews --text "arrived broken" --text "great value"[/]
    """
    from triton_deploy.clients import InferenceClient, UsageError, arrays_from_records

    if sum([bool(inputs), impressions is not None, bool(texts)]) != 1:
        raise UsageError(
            "give one of --input NAME=FILE.npy (repeatable), --impressions FILE or --text STRING"
        )
    records = _load_records(impressions) if impressions is not None else None
    arrays: dict[str, Any] = _load_arrays(inputs or [])
    options = connection(timeout, header, token, tls, ca, cert, key)
    with InferenceClient(url, **options) as client:
        if records is not None:
            arrays = arrays_from_records(client.model_schema(model, version), records)
        if texts:
            arrays = _text_arrays(client.model_schema(model, version), texts)
        result = client.infer_many(model, arrays, version=version, outputs=outputs or None)
    if as_json:
        typer.echo(json.dumps(_outputs_json(model, result)))
    else:
        Console(soft_wrap=True).print(_outputs_table(model, result, limit))


def health(
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--models", "-m", help="Models that must be ready (repeatable or comma-separated)."
        ),
    ] = None,
    wait: Annotated[
        float, typer.Option(help="Wait up to this many seconds for everything to be ready.")
    ] = 0.0,
    url: Url = DEFAULT_URL,
    timeout: Timeout = DEFAULT_TIMEOUT_S,
    header: Headers = None,
    token: Token = None,
    tls: Tls = False,
    ca: Ca = None,
    cert: Cert = None,
    key: Key = None,
    as_json: Json = False,
) -> None:
    """Is the server live and ready, and are these models ready? Exit code 1 if not.

    [dim]tdeploy health --models digits,ctr --wait 60[/]
    """
    from triton_deploy.clients import InferenceClient, NotReady

    names = [n.strip() for item in models or [] for n in item.split(",") if n.strip()]
    with InferenceClient(url, **connection(timeout, header, token, tls, ca, cert, key)) as client:
        try:
            report = (
                client.wait_until_ready(names, timeout=wait) if wait > 0 else client.health(names)
            )
        except NotReady as error:
            report = error.report
    if as_json:
        typer.echo(json.dumps(report.to_dict()))
    else:
        Console(soft_wrap=True).print(_health_table(report))
    if not report.ok:
        raise _NotHealthy(report.summary())


class _NotHealthy(TritonDeployError):
    """The report was printed; this only turns "not ok" into the one-line error and exit 1."""


# -- helpers (numpy and the client are imported when a command runs: `tdeploy` starts faster) --
def _pair(item: str, option: str, form: str) -> tuple[str, str]:
    from triton_deploy.clients import UsageError

    name, sep, value = item.partition("=")
    if not sep or not name:
        raise UsageError(f"{option} takes {form}, got {item!r}")
    return name.strip(), value


def _load_arrays(items: Sequence[str]) -> dict[str, Array]:
    import numpy as np

    from triton_deploy.clients import UsageError

    arrays: dict[str, Array] = {}
    for item in items:
        name, path = _pair(item, "--input", "NAME=FILE.npy")
        try:
            array = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise UsageError(f"--input {name}: no such file {path!r}") from None
        except ValueError as exc:
            raise UsageError(
                f"--input {name}: cannot read {path!r} ({exc}); save strings as a unicode array "
                "(np.array([...], dtype=str)), not an object array"
            ) from None
        if not isinstance(array, np.ndarray):
            raise UsageError(f"--input {name}: {path!r} is not a single .npy array")
        arrays[name] = array
    return arrays


def _text_arrays(schema: Any, texts: Sequence[str]) -> dict[str, Array]:
    """One row per text for the model's one BYTES input ([N, 1] when it batches)."""
    import numpy as np

    from triton_deploy.clients import UsageError

    strings = [t for t in schema.inputs if t.datatype == "BYTES"]
    if len(schema.inputs) != 1 or len(strings) != 1:
        raise UsageError(
            f"--text needs a model with one BYTES input; {schema.name} takes "
            f"{', '.join(t.describe(schema.max_batch_size) for t in schema.inputs)}"
        )
    array = np.array([t.encode("utf-8") for t in texts], dtype=object)
    rows = array.reshape(-1, 1) if schema.max_batch_size > 0 else array
    return {strings[0].name: rows}


def _load_records(path: Path) -> list[dict[str, Any]]:
    from triton_deploy.clients import UsageError

    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"--impressions: no such file {str(path)!r}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"--impressions: {str(path)!r} is not valid JSON ({exc})") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise UsageError(f"--impressions: {str(path)!r} must hold a list of JSON objects")
    if not data:
        raise UsageError(f"--impressions: {str(path)!r} holds no records")
    return data


def _outputs_json(model: str, result: Mapping[str, Array]) -> dict[str, Any]:
    return {
        "model": model,
        "outputs": {
            name: {"dtype": str(array.dtype), "shape": list(array.shape), "data": _nested(array)}
            for name, array in result.items()
        },
    }


def _nested(array: Array) -> Any:
    """Lists for JSON; BYTES elements decoded as UTF-8."""
    import numpy as np

    if array.dtype != object:
        return array.tolist()
    flat = [_text(x) for x in array.reshape(-1).tolist()]
    return np.array(flat, dtype=object).reshape(array.shape).tolist()


def _text(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _cell(row: Array) -> str:
    values = row.reshape(-1)
    items = [f"{v:.4g}" if isinstance(v, float) else str(_text(v)) for v in values.tolist()]
    if len(items) == 1:
        return items[0]
    if len(items) > 8:
        items = [*items[:8], "…"]
    return "[" + ", ".join(items) + "]"


def _outputs_table(model: str, result: Mapping[str, Array], limit: int) -> Table:
    rows = min((len(a) for a in result.values() if a.ndim), default=1)
    table = Table(title=f"{model}: {rows} row{'s' if rows != 1 else ''}", title_justify="left")
    table.add_column("#", justify="right", style="dim")
    for name, array in result.items():
        table.add_column(f"{name}\n[dim]{array.dtype} {list(array.shape[1:])}[/]")
    for i in range(min(rows, max(limit, 0))):
        table.add_row(str(i), *(_cell(a[i] if a.ndim else a) for a in result.values()))
    if rows > limit:
        table.caption = f"{rows - limit} more rows not shown (--limit, or --json for all)"
    return table


def _health_table(report: HealthReport) -> Table:
    def state(ok: bool) -> str:
        return "[green]yes[/]" if ok else "[bold red]no[/]"

    table = Table(title=f"Triton at {report.url}", title_justify="left")
    table.add_column("check")
    table.add_column("ok")
    table.add_row("server live", state(report.live))
    table.add_row("server ready", state(report.ready))
    for name, ready in report.models.items():
        table.add_row(f"model {name} ready", state(ready))
    if report.error:
        table.caption = " ".join(report.error.split())
    return table

"""mkdocs-gen-files: write the generated reference pages into the site at build time."""

from __future__ import annotations

import sys
from pathlib import Path

import mkdocs_gen_files

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from reference import cli_reference, values_reference  # noqa: E402

with mkdocs_gen_files.open("reference/cli.md", "w") as page:
    page.write(cli_reference())
with mkdocs_gen_files.open("reference/chart-values.md", "w") as page:
    page.write(values_reference())

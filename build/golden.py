"""Moved: golden cases live in ``triton_deploy.repository`` (the repository format's one home).

Kept so that code written against ``triton_deploy.build.golden`` keeps working inside the build.
"""

from triton_deploy.repository import (
    GOLDEN_FILE,
    GoldenCase,
    artifacts_directory,
    golden_case_path,
    load_golden_cases,
    pack_arrays,
    unpack_arrays,
)

__all__ = [
    "GOLDEN_FILE",
    "GoldenCase",
    "artifacts_directory",
    "golden_case_path",
    "load_golden_cases",
    "pack_arrays",
    "unpack_arrays",
]

"""``python -m triton_deploy.bench ...`` is ``tdeploy bench ...``."""

import typer

from triton_deploy.cli_bench import bench

if __name__ == "__main__":
    typer.run(bench)

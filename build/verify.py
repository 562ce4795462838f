"""Moved: ``tdeploy verify`` lives in ``triton_deploy.runtime.verify`` (it reads the repository,
not the build). Kept for code written against ``triton_deploy.build.verify``."""

from triton_deploy.runtime.verify import VerificationReport, verify_server

__all__ = ["VerificationReport", "verify_server"]

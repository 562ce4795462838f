"""Where things are in a model repository (what Triton reads and what travels beside it).

<repository>/
    manifest.json              every file's sha256 and size, per-model provenance (last)
    model.sig                  the Sigstore bundle over every file (``tdeploy sign``)
    build_plans.sh             TensorRT plans built on the node (when the build has any)
    <model>/config.pbtxt
    <model>/golden.npz         inputs and the source framework's outputs (Triton ignores it)
    <model>/<version>/...      the served files
"""

from __future__ import annotations

MANIFEST = "manifest.json"
SIGNATURE = "model.sig"
CONFIG = "config.pbtxt"
GOLDEN_FILE = "golden.npz"
PLANS_SCRIPT = "build_plans.sh"
# Written into a version folder on the GPU node by build_plans.sh (after the check).
NODE_GENERATED = ("model.plan", "model.plan.json")
# Never part of what is recorded or signed: Python's byte-code caches (the Python backend writes
# them next to model.py) and the repository's own metadata.
IGNORED_DIRECTORIES = ("__pycache__",)

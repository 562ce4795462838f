"""A small model repository made in the test, with golden cases, a load driver, and a traced
run (tritonserver with tracing and the chart's metrics flags, driven, scraped, stopped).

Nothing here is an example model of the project: a generic tabular ONNX model called directly
(``scorer``), and an ensemble (``pipeline``) of a Python model turning text into features
(``featurizer``, fails on the text "fail") and the same ONNX graph (``ranker``), so the inference
log and the monitor are shown to work on any model: numeric and text inputs, batching, an
ensemble with parent traces, failures. Each model's golden cases follow the traffic it gets.
"""

from __future__ import annotations

import threading
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import tritonclient.grpc as grpcclient
from google.protobuf import text_format
from onnx import TensorProto, helper, numpy_helper
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.utils import InferenceServerException

from triton_deploy.build.golden import GoldenCase, golden_case_path
from triton_deploy.observability import TraceSettings
from triton_deploy.runtime.server import TritonServer

WEIGHTS = np.array([[0.8, -0.5], [0.3, 0.9], [-0.6, 0.2], [0.1, -0.7]], dtype=np.float32)
BIAS = np.array([0.05, -0.1], dtype=np.float32)
VOCABULARY = ["alpha", "beta", "gamma", "delta", "epsilon"]
UNSEEN = ["zeta", "eta", "theta"]

FEATURIZER = """
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            text = pb_utils.get_input_tensor_by_name(request, "text").as_numpy()
            words = [v[0].decode() for v in text]
            if "fail" in words:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError("cannot featurize 'fail'")))
                continue
            features = np.array([featurize(w) for w in words], dtype=np.float32)
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("features", features)]))
        return responses


def featurize(word):
    codes = [ord(c) for c in word]
    return [len(word) / 5.0 - 1.0, (codes[0] - 100) / 10.0, (codes[-1] - 100) / 10.0, len(set(word)) / 5.0 - 1.0]
"""


def featurize(word: str) -> list[float]:
    codes = [ord(c) for c in word]
    return [
        len(word) / 5.0 - 1.0,
        (codes[0] - 100) / 10.0,
        (codes[-1] - 100) / 10.0,
        len(set(word)) / 5.0 - 1.0,
    ]


def score(features: np.ndarray) -> np.ndarray:
    z = features.astype(np.float32) @ WEIGHTS + BIAS
    return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


def _write_config(config: mc.ModelConfig, folder: Path) -> None:
    (folder / "1").mkdir(parents=True, exist_ok=True)
    (folder / "config.pbtxt").write_text(text_format.MessageToString(config))


def build_repository(root: Path, *, golden_rows: int = 600, seed: int = 0) -> Path:
    """``root/model_repository`` with four models and their golden cases, where the build keeps
    them (``<repository>/<model>/golden.npz``)."""
    repository = root / "model_repository"
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["features", "W"], ["z0"]),
            helper.make_node("Add", ["z0", "b"], ["z"]),
            helper.make_node("Sigmoid", ["z"], ["scores"]),
        ],
        "scorer",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 2])],
        [numpy_helper.from_array(WEIGHTS, "W"), numpy_helper.from_array(BIAS, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model, full_check=True)
    for name in ("scorer", "ranker"):
        _write_config(
            mc.ModelConfig(
                name=name,
                platform="onnxruntime_onnx",
                max_batch_size=32,
                input=[mc.ModelInput(name="features", data_type=mc.TYPE_FP32, dims=[4])],
                output=[mc.ModelOutput(name="scores", data_type=mc.TYPE_FP32, dims=[2])],
                dynamic_batching=mc.ModelDynamicBatching(max_queue_delay_microseconds=500),
            ),
            repository / name,
        )
        onnx.save(model, repository / name / "1" / "model.onnx")
    _write_config(
        mc.ModelConfig(
            name="featurizer",
            backend="python",
            max_batch_size=32,
            input=[mc.ModelInput(name="text", data_type=mc.TYPE_STRING, dims=[1])],
            output=[mc.ModelOutput(name="features", data_type=mc.TYPE_FP32, dims=[4])],
        ),
        repository / "featurizer",
    )
    (repository / "featurizer" / "1" / "model.py").write_text(FEATURIZER)
    step = mc.ModelEnsembling.Step
    _write_config(
        mc.ModelConfig(
            name="pipeline",
            platform="ensemble",
            max_batch_size=32,
            input=[mc.ModelInput(name="text", data_type=mc.TYPE_STRING, dims=[1])],
            output=[mc.ModelOutput(name="scores", data_type=mc.TYPE_FP32, dims=[2])],
            ensemble_scheduling=mc.ModelEnsembling(
                step=[
                    step(
                        model_name="featurizer",
                        model_version=-1,
                        input_map={"text": "text"},
                        output_map={"features": "features"},
                    ),
                    step(
                        model_name="ranker",
                        model_version=-1,
                        input_map={"features": "features"},
                        output_map={"scores": "scores"},
                    ),
                ]
            ),
        ),
        repository / "pipeline",
    )
    # Golden cases, as the build keeps them: real inputs and the outputs for them.
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(golden_rows, 4)).astype(np.float32)
    words = rng.choice(VOCABULARY, size=golden_rows)
    text = np.array([[w.encode()] for w in words], dtype=object)
    word_features = np.array([featurize(w) for w in words], dtype=np.float32)
    cases = {
        "scorer": GoldenCase({"features": features}, {"scores": score(features)}),
        "featurizer": GoldenCase({"text": text}, {"features": word_features}),
        "ranker": GoldenCase({"features": word_features}, {"scores": score(word_features)}),
        "pipeline": GoldenCase({"text": text}, {"scores": score(word_features)}),
    }
    for model, case in cases.items():
        case.save(golden_case_path(repository, model))
    return repository


@dataclass
class Sent:
    """One request the load driver sent and what came back."""

    request_id: str
    model: str
    inputs: dict[str, np.ndarray]
    ok: bool
    outputs: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Feed:
    """What to send: numeric rows for the scorer, words for the pipeline."""

    features: np.ndarray
    words: list[str]
    failing_words: int = 0  # how many pipeline requests carry "fail"


def clean_feed(requests: int, seed: int = 1) -> Feed:
    rng = np.random.default_rng(seed)
    return Feed(
        rng.normal(size=(requests * 4, 4)).astype(np.float32),
        list(rng.choice(VOCABULARY, size=requests * 4)),
        failing_words=3,
    )


def drifted_feed(requests: int, seed: int = 2) -> Feed:
    rng = np.random.default_rng(seed)
    features = (rng.normal(size=(requests * 4, 4)) * 2.0 + 1.5).astype(np.float32)
    features[::25, 0] = np.nan  # NaN in, NaN out: the monitor's NaN/inf check
    return Feed(features, list(rng.choice(VOCABULARY[:2] + UNSEEN, size=requests * 4)))


def drive(url: str, feed: Feed, *, requests: int, workers: int = 8, seed: int = 3) -> list[Sent]:
    """``requests`` calls per model (scorer direct, pipeline ensemble) from ``workers`` threads,
    batches of 1-4 rows, each with a unique request id. Bounded in count."""
    rng = np.random.default_rng(seed)
    plan: list[tuple[str, int, int]] = []
    row = word = 0
    for _ in range(requests):
        n = int(rng.integers(1, 5))
        plan.append(("scorer", row, n))
        row += n
        m = int(rng.integers(1, 5))
        plan.append(("pipeline", word, m))
        word += m
    pipeline = [i for i, (model, _, _) in enumerate(plan) if model == "pipeline"]
    spacing = len(pipeline) // (feed.failing_words + 1)
    fail_at = {pipeline[spacing * (j + 1)] for j in range(feed.failing_words)}
    local = threading.local()
    clients: list[grpcclient.InferenceServerClient] = []

    def client() -> grpcclient.InferenceServerClient:
        if not hasattr(local, "client"):
            local.client = grpcclient.InferenceServerClient(url)
            clients.append(local.client)
        return local.client

    def call(index: int) -> Sent:
        model, start, n = plan[index]
        request_id = f"{model}-{index}-{uuid.uuid4().hex[:8]}"
        if model == "scorer":
            array = feed.features[start : start + n]
            tensor = grpcclient.InferInput("features", list(array.shape), "FP32")
            tensor.set_data_from_numpy(array)
            name = "features"
            out_name = "scores"
        else:
            words = feed.words[start : start + n]
            if index in fail_at:
                words = ["fail", *words[1:]]
            array = np.array([[w.encode()] for w in words], dtype=object)
            tensor = grpcclient.InferInput("text", list(array.shape), "BYTES")
            tensor.set_data_from_numpy(array)
            name = "text"
            out_name = "scores"
        try:
            result = client().infer(model, [tensor], request_id=request_id, client_timeout=30)
        except InferenceServerException:
            return Sent(request_id, model, {name: array}, ok=False)
        return Sent(
            request_id, model, {name: array}, ok=True, outputs={out_name: result.as_numpy(out_name)}
        )

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(call, range(len(plan))))
    finally:
        for c in clients:
            c.close()


@dataclass
class Run:
    repository: Path
    trace_dir: Path
    sent: list[Sent]
    metrics_text: str  # scraped right after the load, server still up
    metrics_under_load: list[str]  # scraped every 50 ms while the load ran
    server_log: list[str]


def chart_metrics_args() -> list[str]:
    """The chart's --metrics-config flags (latency summaries), as rendered for blue."""
    from chartargs import rendered_triton_args

    return [a for a in rendered_triton_args({}, "blue") if a.startswith("--metrics-config")]


def traced_run(repository: Path, trace_dir: Path, feed: Feed, requests: int) -> Run:
    settings = TraceSettings.parse(
        [
            f"file={trace_dir}/blue.json",
            "rate=1",
            "level=TIMESTAMPS",
            "level=TENSORS",
            "log-frequency=50",
        ]
    )
    settings.prepare()
    texts: list[str] = []
    done = threading.Event()
    with TritonServer(repository, extra_args=[*settings.args(), *chart_metrics_args()]) as server:

        def scrape_under_load() -> None:
            while not done.is_set():
                with urllib.request.urlopen(server.metrics_url, timeout=5) as reply:
                    texts.append(reply.read().decode())
                done.wait(0.05)

        scraper = threading.Thread(target=scrape_under_load, daemon=True)
        scraper.start()
        try:
            sent = drive(server.grpc_url, feed, requests=requests)
        finally:
            done.set()
            scraper.join(timeout=10)
        with urllib.request.urlopen(server.metrics_url, timeout=5) as reply:
            final = reply.read().decode()
        log = list(server.log)
    assert texts, "no /metrics scrape happened while the load ran"
    return Run(repository, trace_dir, sent, final, texts, log)

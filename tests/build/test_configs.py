from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from triton_deploy.build import configs
from triton_deploy.build.spec import ModelSpec, TensorSpec


def _model(**kw) -> ModelSpec:  # type: ignore[no-untyped-def]
    base = dict(name="m", source="m.onnx", max_batch_size=32)
    return ModelSpec.model_validate(base | kw)


def _parse(text: str) -> mc.ModelConfig:
    config = mc.ModelConfig()
    text_format.Parse(text, config)
    return config


def test_dynamic_batching_queue_policy_instances_warmup() -> None:
    spec = _model(
        dynamic_batching={
            "preferred_batch_size": [8, 16],
            "max_queue_delay_microseconds": 700,
            "queue": {"max_queue_size": 100, "timeout_microseconds": 5000},
        },
        instance_group=[{"kind": "KIND_CPU", "count": 2}],
        parameters={"intra_op_thread_count": "1"},
    )
    x = [TensorSpec(name="x", dtype="FP32", dims=[4])]
    y = [TensorSpec(name="y", dtype="FP32", dims=[2])]
    config = _parse(configs.render(configs.model_config(spec, x, y)))
    assert config.platform == "onnxruntime_onnx" and config.max_batch_size == 32
    batching = config.dynamic_batching
    assert list(batching.preferred_batch_size) == [8, 16]
    assert batching.max_queue_delay_microseconds == 700
    policy = batching.default_queue_policy
    assert policy.max_queue_size == 100 and policy.default_timeout_microseconds == 5000
    assert policy.timeout_action == mc.ModelQueuePolicy.REJECT
    assert config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    assert config.instance_group[0].count == 2
    assert config.parameters["intra_op_thread_count"].string_value == "1"
    assert [w.batch_size for w in config.model_warmup] == [1, 32]
    assert config.version_policy.latest.num_versions == 1
    unbounded = configs.model_config(_model(), x, y)
    assert unbounded.HasField("dynamic_batching")
    assert not unbounded.dynamic_batching.HasField("default_queue_policy")


def test_batching_off_and_no_warmup_for_strings() -> None:
    spec = _model(
        source=None,
        python_model="x.py",
        dynamic_batching={"enabled": False},
        inputs=[{"name": "s", "dtype": "BYTES", "dims": [1]}],
        outputs=[{"name": "o", "dtype": "FP32", "dims": [1]}],
    )
    config = configs.model_config(spec, spec.inputs, spec.outputs)
    assert config.backend == "python" and not config.platform
    assert not config.HasField("dynamic_batching")
    assert not config.model_warmup  # zero-data strings would be rejected as empty categories
    assert config.input[0].data_type == mc.TYPE_STRING


def test_version_policies() -> None:
    all_versions = configs.model_config(_model(version_policy={"policy": "all"}), [], [])
    assert all_versions.version_policy.HasField("all")
    specific = configs.model_config(
        _model(version_policy={"policy": "specific", "versions": [1, 3]}), [], []
    )
    assert list(specific.version_policy.specific.versions) == [1, 3]


def test_a_tensor_that_is_only_the_batch_axis_gets_a_reshape() -> None:
    y = [TensorSpec(name="score", dtype="FP32", dims=[1], reshape=[])]
    config = _parse(configs.render(configs.model_config(_model(), [], y)))
    assert list(config.output[0].dims) == [1]
    assert config.output[0].HasField("reshape") and list(config.output[0].reshape.shape) == []
    assert configs.tensor_specs(config.output)[0].reshape == []

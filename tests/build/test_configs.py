from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from triton_deploy.build import configs
from triton_deploy.build.spec import FilOptions, ModelSpec, TensorSpec
from triton_deploy.build.xgboost2fil import FIL_FILENAMES, fil_parameters, fil_tensors


def _model(**kw) -> ModelSpec:  # type: ignore[no-untyped-def]
    base = dict(name="m", backend="onnxruntime", recipe="digits:train", max_batch_size=32)
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
        backend="python",
        recipe=None,
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


def test_fil_contract_parameters_and_tensors() -> None:
    options = FilOptions(
        model_type="xgboost_json", output_class=True, predict_proba=True, threshold=0.5
    )
    params = fil_parameters(options)
    assert params == {
        "model_type": "xgboost_json",
        "output_class": "true",
        "predict_proba": "true",
        "threshold": "0.5",
        "use_experimental_optimizations": "false",
    }
    inputs, outputs = fil_tensors(46, options)
    assert (inputs[0].name, inputs[0].dtype, inputs[0].dims) == ("input__0", "FP32", [46])
    assert (outputs[0].name, outputs[0].dtype, outputs[0].dims) == ("output__0", "FP32", [1])
    assert fil_tensors(46, FilOptions(proba_width=2))[1][0].dims == [2]
    assert fil_tensors(46, FilOptions(predict_proba=False))[1][0].dims == [1]
    assert FIL_FILENAMES == {
        "xgboost_json": "xgboost.json",
        "xgboost_ubj": "xgboost.ubj",
        "xgboost": "xgboost.model",
    }


def test_version_policies() -> None:
    all_versions = configs.model_config(_model(version_policy={"policy": "all"}), [], [])
    assert all_versions.version_policy.HasField("all")
    specific = configs.model_config(
        _model(version_policy={"policy": "specific", "versions": [1, 3]}), [], []
    )
    assert list(specific.version_policy.specific.versions) == [1, 3]

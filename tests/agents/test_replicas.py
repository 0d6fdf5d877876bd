"""ReST under a `tf.distribute.MirroredStrategy` of two replicas (two logical CPU devices).

Logical devices must be set before TensorFlow starts, so each check runs in a fresh process.
"""

import json
import os
import subprocess
import sys
import textwrap

_PRELUDE = """
import json
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
two = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
"""

_FINETUNE = """
from tfkit.agents import WordTokenizer
from tfkit.agents.rest import ModelSpec, finetune
from tfkit.backend import set_seed
tok = WordTokenizer.fit(["decide ( foo bar baz qux ) > Search query = Terminate"])
words = ["foo", "bar", "baz", "qux"]
examples = [{{"prompt": f"decide ( {{w}} ) >", "output": f'Search ( query = " {{w}} " )'}}
            for w in words * 4]  # 16 examples: 2 global batches of 8 an epoch
out = {{}}
for name, strategy, per_replica in (("one", "default", 8), ("two", two, 4)):
    set_seed(0)
    model, history = finetune(examples, tok, ModelSpec(1, 16, 2, 32), sequence_length=24,
                              epochs=3, directory={tmp!r} + "/" + name, batch_size=per_replica,
                              learning_rate=1e-2, strategy=strategy)
    out[name] = {{"loss": history["loss"], "weights": [w.tolist() for w in model.get_weights()],
                 "variable": type(model.weights[0]).__name__}}
logs = []
_, again = finetune(examples, tok, ModelSpec(1, 16, 2, 32), sequence_length=24, epochs=4,
                    directory={tmp!r} + "/two", batch_size=4, learning_rate=1e-2,
                    strategy=two, log=logs.append)
out["resumed"] = {{"logs": logs, "epochs": len(again.get("loss", []))}}
print("RESULT", json.dumps(out))
"""

_PIPELINE = """
import tfkit.agents.rest.pipeline as pipeline
from tfkit.agents.rest.finetune import make_strategy
from tfkit.experiments import get, run_experiment
made = []
def fake_make_strategy(name):  # "mirrored" here: the two CPU replicas
    made.append(name)
    return two if name == "mirrored" else make_strategy(name)
pipeline.make_strategy = fake_make_strategy
splits = []
run = two.run
def counting_run(fn, args=(), kwargs=None):
    splits.append(1)
    return run(fn, args=args, kwargs=kwargs)
two.run = counting_run
exp = get("rest-react")
cfg = exp.config("demo", train_questions=4, demo_questions=8, dev_questions=3,
                 test_questions=3, strategy="mirrored")
results = run_experiment(exp, cfg, {tmp!r}, log=None)
from tfkit.runs import RunDir
runner = pipeline._Runner(cfg, RunDir({tmp!r}, log=None))
model = runner.model("gen1_L")
print("RESULT", json.dumps({{"made": made, "split_batches": len(splits),
                            "rows": len(results["iterations"]),
                            "replicas": runner.lm("gen1_L").strategy.num_replicas_in_sync,
                            "variable": type(model.weights[0]).__name__}}))
"""


def _run(body: str, tmp_path) -> dict:
    script = textwrap.dedent(_PRELUDE + body.format(tmp=str(tmp_path)))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=600, env=env)
    lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    return json.loads(lines[0][len("RESULT "):])


def test_finetuning_on_two_replicas_equals_one_replica_with_the_same_global_batch(tmp_path):
    import numpy as np

    out = _run(_FINETUNE, tmp_path)
    assert out["two"]["variable"] == "MirroredVariable"
    np.testing.assert_allclose(out["two"]["loss"], out["one"]["loss"], rtol=1e-4)
    for a, b in zip(out["two"]["weights"], out["one"]["weights"], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)  # summation order (Adam scales it)
    assert out["one"]["loss"][-1] < out["one"]["loss"][0]  # it trained
    # a longer run into the same folder resumes under the strategy: only the new epoch runs
    assert any("resum" in line for line in out["resumed"]["logs"]), out["resumed"]
    assert out["resumed"]["epochs"] == 4


def test_experiment_strategy_trains_holds_models_and_splits_rollouts(tmp_path):
    out = _run(_PIPELINE, tmp_path)
    assert out["made"] == ["mirrored", "mirrored"]  # once per runner (the run, then ours)
    assert out["rows"] == 4 and out["replicas"] == 2
    assert out["variable"] == "MirroredVariable"  # loaded models live in the strategy's scope
    assert out["split_batches"] > 0  # rollouts' decode batches ran on both replicas

"""The run's one-line verdict on a failure names the cause, not the wrapper around it."""
from pipelines import progress

BEAM_WRAPPED = """Traceback (most recent call last):
  File "apache_beam/runners/common.py", line 1435, in process
    return self.do_fn_invoker.invoke_process(element)
  File "/repo/tfrs_seqcompress/data/history_beam.py", line 88, in process
    raise KeyError(f"no token for event {row}")
KeyError: 'no token for event 12' [while running 'HistoryExamples/Build']"""

GRAPH_ERROR = """Graph execution error:

Detected at node 'embedding/Lookup' defined at (most recent call last):
  File "/repo/pipelines/trainer_module.py", line 150, in run_fn
    model.fit(train, epochs=2)
Node: 'embedding/Lookup'
indices[3,0] = 5000 is not in [0, 3884)
\t [[{{node embedding/Lookup}}]] [Op:__inference_train_function_4242]"""


def test_a_beam_wrapped_error_is_reported_by_its_cause():
    assert progress.failure_reason(RuntimeError(BEAM_WRAPPED)) == (
        "KeyError: 'no token for event 12' [while running 'HistoryExamples/Build']")


def test_a_graph_execution_error_is_reported_by_the_line_before_its_node_marker():
    class InvalidArgumentError(Exception):
        pass

    assert progress.failure_reason(InvalidArgumentError(GRAPH_ERROR)) == (
        "InvalidArgumentError: indices[3,0] = 5000 is not in [0, 3884)")


def test_a_plain_error_keeps_its_first_line_and_type():
    assert progress.failure_reason(ValueError("--history-length must be >= 1\nsee --help")) == (
        "ValueError: --history-length must be >= 1")
    assert progress.failure_reason(MemoryError()) == "MemoryError"

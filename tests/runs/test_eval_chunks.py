"""How many held-out tasks a run adapts at once: fewer where each one costs memory."""

from bayesmeta.runs.config import RunConfig


def test_conv4_runs_evaluate_two_tasks_at_a_time_and_mlps_more() -> None:
    assert RunConfig().eval_chunk_size == 100
    assert RunConfig(learner="protonet", data="digits").eval_chunk_size == 10  # an MLP
    assert RunConfig(learner="protonet", data="glyphs").eval_chunk_size == 2
    conv_digits = RunConfig(learner="bayesian_maml", data="digits", backbone="conv4")
    assert conv_digits.eval_chunk_size == 2

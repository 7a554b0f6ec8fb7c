"""--quick on image data caps the settings left unset (query images, adaptation steps)."""

from bayesmeta.runs.config import RunConfig
from bayesmeta.runs.config_file import parse_config
from bayesmeta.runs.experiment import QUICK_LIMITS, quick


def test_quick_caps_unset_query_images_and_svi_steps_on_images() -> None:
    config = parse_config({"learner": "variational", "data": "digits"})
    small = quick(config, explicit={"learner", "data"})
    assert (small.k_query, small.eval_k_query) == (5, 5)
    assert small.train_query == small.held_out_query == QUICK_LIMITS["image_k_query"]
    assert small.adapt_steps == QUICK_LIMITS["image_adapt_steps"] < config.adapt_steps


def test_quick_keeps_the_settings_that_were_given() -> None:
    raw = {"learner": "variational", "data": "digits", "k_query": 9, "adapt_steps": 300}
    config = quick(parse_config(raw), explicit=set(raw))
    assert (config.k_query, config.eval_k_query, config.adapt_steps) == (9, 5, 300)
    # unknown which were given: adapt_steps (filled from the learner's default) is kept
    assert quick(parse_config(raw)).adapt_steps == 300


def test_quick_keeps_gradient_steps_and_regression_queries() -> None:
    maml = quick(parse_config({"learner": "maml", "data": "glyphs"}), explicit=set())
    assert maml.adapt_steps == 10  # below the cap
    regression = quick(RunConfig(learner="variational"), explicit=set())
    assert (regression.k_query, regression.eval_k_query, regression.adapt_steps) == (
        None,
        None,
        300,
    )

"""Threshold calibration on held-out predictions."""

from __future__ import annotations

import numpy as np

from plugins.chatbot.calibration import (
    Calibration,
    calibrate_confidence,
    calibrate_margin,
    calibrate_retrieval,
)


def test_confidence_threshold_reaches_the_target_precision_with_the_most_coverage():
    rng = np.random.default_rng(0)
    in_scope = rng.uniform(0.6, 1.0, 80)  # correct, confident
    mistakes = rng.uniform(0.3, 0.55, 10)  # wrong, unsure
    outside = rng.uniform(0.2, 0.5, 20)  # out of scope, never right
    confidences = np.concatenate([in_scope, mistakes, outside])
    correct = np.array([True] * 80 + [False] * 30)

    threshold, source, details = calibrate_confidence(confidences, correct, target_precision=0.9, fallback=0.5)

    assert source == "calibrated" and details["target_reached"]
    answered = confidences >= threshold
    assert correct[answered].mean() >= 0.9
    assert answered[:80].all(), "every confident correct answer stays answered"
    assert not answered.all(), "the least confident mistakes are turned away"

    strict, _, _ = calibrate_confidence(confidences, correct, target_precision=1.0, fallback=0.5)
    assert confidences[80:].max() < strict <= in_scope.min()


def test_confidence_threshold_falls_back_without_enough_validation():
    threshold, source, details = calibrate_confidence(
        np.array([0.9, 0.8]), np.array([True, True]), target_precision=0.9, fallback=0.42
    )
    assert (threshold, source) == (0.42, "fallback")
    assert "2 validation messages" in details["reason"]


def test_confidence_threshold_when_the_target_is_out_of_reach():
    confidences = np.linspace(0.1, 0.9, 40)
    correct = np.arange(40) % 2 == 0  # a coin toss at every confidence
    threshold, source, details = calibrate_confidence(confidences, correct, target_precision=0.99, fallback=0.5)
    assert source == "calibrated" and not details["target_reached"]
    assert 0.0 <= threshold <= 1.0


def test_confidence_threshold_never_turns_away_more_customers_than_allowed():
    # Few examples per intent: in scope the model is right about as often as it is confident, and
    # out-of-scope examples (never right) sit in the middle. The precision target alone is reached
    # only by refusing most customers, as a BANKING77 run with 10 examples per intent did.
    rng = np.random.default_rng(1)
    inside = rng.uniform(0.2, 0.95, 100)
    confidences = np.concatenate([inside, rng.uniform(0.2, 0.6, 40)])
    correct = np.concatenate([rng.uniform(size=100) < inside, np.zeros(40, dtype=bool)])
    in_scope = np.arange(140) < 100
    unbounded, _, _ = calibrate_confidence(confidences, correct, target_precision=0.9, fallback=0.5)
    assert (confidences[in_scope] < unbounded).mean() > 0.5  # what the cap prevents

    threshold, source, details = calibrate_confidence(
        confidences, correct, target_precision=0.9, fallback=0.5, in_scope=in_scope, max_rejection=0.05
    )
    assert source == "calibrated"
    assert (confidences[in_scope] < threshold).mean() <= 0.05
    assert details["in_scope_turned_away"] <= 0.05 and details["max_rejection"] == 0.05


def test_margin_threshold_marks_the_risky_low_margin_band():
    margins = np.concatenate([np.linspace(0.0, 0.08, 8), np.linspace(0.3, 0.9, 72)])
    correct = np.array([False, False, True, False, False, True, False, False] + [True] * 72)  # 6 of 8 wrong
    threshold, source, details = calibrate_margin(
        margins, correct, target_precision=0.9, max_clarify_rate=0.2, fallback=0.1
    )
    assert source == "calibrated"
    assert margins[~correct].max() < threshold < 0.3
    assert details["errors_clarified"] == 6 and details["clarify_rate"] == 0.1


def test_a_question_must_prevent_more_errors_than_it_delays_right_answers():
    margins = np.concatenate([np.linspace(0.0, 0.08, 8), np.linspace(0.3, 0.9, 72)])
    correct = np.array([True, False] * 4 + [True] * 72)  # half wrong below 0.1: a question gains nothing
    threshold, source, _ = calibrate_margin(margins, correct, target_precision=0.9, max_clarify_rate=0.2, fallback=0.1)
    assert (threshold, source) == (0.0, "calibrated")


def test_clarifying_questions_stay_within_the_configured_rate():
    margins = np.linspace(0.0, 0.9, 100)
    correct = np.arange(100) >= 20  # the 20 lowest margins are all wrong
    threshold, _, details = calibrate_margin(margins, correct, target_precision=0.9, max_clarify_rate=0.05, fallback=0)
    assert details["clarify_rate"] == 0.05 and details["errors_clarified"] == 5 and threshold < margins[6]


def test_margin_threshold_is_zero_when_mistakes_are_not_at_low_margins():
    margins = np.linspace(0.0, 0.9, 40)
    correct = np.ones(40, bool)
    correct[-5:] = False  # confident mistakes: clarifying would not catch them
    threshold, source, _ = calibrate_margin(margins, correct, target_precision=0.9, max_clarify_rate=0.2, fallback=0.1)
    assert (threshold, source) == (0.0, "calibrated")


def test_margin_threshold_needs_some_mistakes_to_learn_from():
    margins = np.linspace(0.2, 0.9, 30)
    threshold, source, _ = calibrate_margin(
        margins, np.ones(30, bool), target_precision=0.9, max_clarify_rate=0.2, fallback=0.12
    )
    assert (threshold, source) == (0.12, "fallback")


def test_retrieval_threshold_separates_in_and_out_of_kb_scores():
    threshold, source, details = calibrate_retrieval(
        np.array([0.6, 0.7, 0.8, 0.55]), np.array([0.1, 0.2, 0.3]), fallback=0.35
    )
    assert source == "calibrated" and details["balanced_accuracy"] == 1.0
    assert 0.3 < threshold < 0.55


def test_retrieval_threshold_falls_back_with_too_few_queries():
    assert calibrate_retrieval(np.array([0.6]), np.array([0.1, 0.2, 0.3]), fallback=0.35)[:2] == (
        0.35,
        "fallback",
    )


def test_calibration_round_trips_through_its_file(tmp_path):
    calibration = Calibration(0.61, 0.07, 0.4, {"confidence_threshold": "calibrated"}, {"validation_accuracy": 1.0})
    calibration.save(tmp_path)
    assert Calibration.load(tmp_path) == calibration
    assert Calibration.load(tmp_path / "missing") is None


def test_refit_only_where_holding_out_costs_much():
    from plugins.chatbot.training import refits
    from services.training import LabeledText

    few = [LabeledText(f"message {i}", f"intent {i % 3}") for i in range(30)]  # 10 per intent
    many = [LabeledText(f"message {i}", f"intent {i % 3}") for i in range(300)]  # 100 per intent
    assert refits("auto", few, few[:6]) and not refits("auto", many, many[:60])
    assert refits("always", many, many[:60]) and not refits("never", few, few[:6])
    assert not refits("always", few, [])  # nothing was held out: the first run already saw everything


def test_refit_trains_as_many_epochs_as_the_first_run_found_best():
    from plugins.chatbot.training import refit_params

    first = {"epochs": 8.0, "batch_size": 16, "learning_rate": 1e-4, "early_stopping_patience": 0}
    params = refit_params(first, {"best_step": 120, "steps": 160}, first_examples=320)  # 20 steps an epoch
    assert params == {**first, "epochs": 6.0, "min_steps": 0}
    assert refit_params(first, {"steps": 40}, first_examples=310)["epochs"] == 2.0  # no validation: every step

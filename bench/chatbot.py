"""Chatbot: BANKING77 intents through the chatbot plugin's public functions, in and out of scope.

Each run trains in its own temporary data dir through
``plugins.chatbot.training.train_intent_model`` with the plugin's defaults (which hold
out 20% of what they are given to calibrate the thresholds and the out-of-scope
detector, and refit on everything below 50 examples per intent):

- ``oos``: the whole training split less ``--oos-intents`` (10) intents picked at random;
  the test messages of those intents are out of scope. No out-of-scope example is given.
- ``oos-per-intent``: the same intents, ``--per-intent`` (10) training examples of each.
- ``oos-per-intent-examples``: as ``oos-per-intent``, plus ``--per-intent`` training
  messages of each held-out intent given as out-of-scope examples (they calibrate and
  choose the score); ``oos-per-intent-class``: the same examples also trained as one more class.
- ``oos-examples`` / ``oos-class`` (not run by default): as ``oos``, with the same
  out-of-scope examples for calibration / as one more class.
- ``banking77-oos`` (not run by default): the in-domain half of the BANKING77-OOS protocol,
  all training data of its 50 in-scope intents; the test messages of its 27 held-out intents
  are out of scope. Its out-of-domain half needs CLINC150, which is not shipped.
- ``all`` / ``per-intent``: all 77 intents, nothing out of scope (not run by default).

``--synthetic-outliers W`` sets the plugin's ``synthetic_outliers`` option in every run: an
out-of-scope class trained on mixtures of two intents' sentence vectors, with no example.

Which out-of-scope score the bot uses is chosen per run on dev data carved from the
training split, never the test split: the held-out intents' training messages (out of
scope) against in-scope messages no model trained on (the plugin's own validation split
where the run does not refit; otherwise training messages outside the 10-per-intent
sample). The test split is then answered once by ``plugins.chatbot.evaluate.evaluate``
(what ``suite chatbot evaluate`` runs): accuracy and macro F1 of the intent classifier,
where each message went, and the out-of-scope AUROC.

Every intent gets a one-line answer template, so an answer from a template means the
bot committed to an intent. Retrieval is over the plugin's sample knowledge base. For
the first run, answer latency of ``Chatbot(ctx).answer`` against a plain ``transformers``
pipeline on the same model folder, one message per call, back to back.

    python -m bench.chatbot
    python -m bench.chatbot --intents 12 --oos-intents 3 --max-steps 12 --test-limit 60 --latency-messages 10  # smoke
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.common import (
    add_thread_option,
    command_line,
    latency_summary,
    load_labeled,
    percentile,
    ratio,
    sample,
    set_threads,
    suite_context,
    table,
    write_results,
)

ALL_RUNS = (
    "oos-per-intent",
    "oos",
    "oos-per-intent-examples",
    "oos-per-intent-class",
    "all",
    "per-intent",
    "oos-examples",
    "oos-class",
    "banking77-oos",
)
DEFAULT_RUNS = ALL_RUNS[:4]
OOS_LABEL = "out_of_scope"
# BANKING77-OOS (Zhang et al., 2021, "Are Pretrained Transformers Robust in Intent Classification?"):
# these 27 intents are its in-domain out-of-scope set, the other 50 are in scope. Its out-of-domain
# half comes from CLINC150, which is not among the shipped data sets.
BANKING77_OOS_HELD_OUT = [
    "age_limit",
    "atm_support",
    "card_acceptance",
    "card_delivery_estimate",
    "card_not_working",
    "card_swallowed",
    "compromised_card",
    "contactless_not_working",
    "exchange_rate",
    "get_disposable_virtual_card",
    "get_physical_card",
    "getting_virtual_card",
    "lost_or_stolen_card",
    "passcode_forgotten",
    "pin_blocked",
    "receiving_money",
    "terminate_account",
    "top_up_by_bank_transfer_charge",
    "top_up_by_card_charge",
    "top_up_by_cash_or_cheque",
    "top_up_limits",
    "topping_up_by_card",
    "transfer_into_account",
    "unable_to_verify_identity",
    "verify_my_identity",
    "verify_source_of_funds",
    "virtual_card_not_working",
]
# --report-on dev: this many training messages per intent, drawn with their own seed, are never trained on.
DEV_PER_INTENT = 10
DEV_SEED = 7
DEV_LIMIT = 600  # dev messages per side for choosing the out-of-scope score


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default=",".join(DEFAULT_RUNS), help=f"comma-separated, of {', '.join(ALL_RUNS)}")
    parser.add_argument("--per-intent", type=int, default=10)
    parser.add_argument("--oos-intents", type=int, default=10, help="intents held out as out of scope")
    parser.add_argument("--intents", type=int, default=None, help="use only N intents (smoke runs)")
    parser.add_argument("--test-limit", type=int, default=None, help="answer at most N test messages per side")
    parser.add_argument("--latency-messages", type=int, default=300, help="messages timed on both sides")
    parser.add_argument("--epochs", type=float, default=None, help="override the plugin's training epochs")
    parser.add_argument("--max-steps", type=int, default=None, help="cap training steps (smoke runs)")
    parser.add_argument(
        "--synthetic-outliers",
        type=float,
        default=0.0,
        help="the plugin's synthetic_outliers option (weight of the out-of-scope class trained on mixtures of two "
        "intents' features; 0: off)",
    )
    parser.add_argument(
        "--report-on",
        choices=("test", "dev"),
        default="test",
        help="'dev': score on 10 held-out training messages per intent (never trained on) in place of the test "
        "split, to choose settings without looking at it",
    )
    add_thread_option(parser)
    return parser.parse_args()


def write_templates(path: Path, intents: list[str]) -> Path:
    """One answer per intent: a template answer is the bot committing to that intent."""
    book = {
        "intents": {
            intent: {"title": intent.replace("_", " "), "template": f"Here is how to {intent.replace('_', ' ')}."}
            for intent in intents
        }
    }
    path.write_text(json.dumps(book, indent=1), encoding="utf-8")
    return path


def per_intent(rows: list, count: int, seed: int = 42) -> list:
    by_label: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        by_label[row.label].append(index)
    rng = random.Random(seed)
    chosen = sorted(i for indices in by_label.values() for i in rng.sample(indices, min(count, len(indices))))
    return [rows[i] for i in chosen]


def dev_scores(model, in_rows: list, out_texts: list[str]) -> dict[str, float]:
    """Each out-of-scope score's AUROC on dev messages (in scope: ``in_rows``; out of scope: ``out_texts``)."""
    from plugins.chatbot.ood import METHODS, auroc, score

    detector = model.detector
    texts = [row.text for row in in_rows] + list(out_texts)
    features, logits = model.classifier.features_and_logits(texts)
    result = {}
    for method in METHODS:
        if method in detector.thresholds:
            values = score(method, detector.bank, features, logits, detector.outlier)
            result[method] = auroc(values[: len(in_rows)], values[len(in_rows) :])
    return result


def run_setting(name: str, data: dict[str, list], args, templates: Path) -> dict[str, Any]:
    """Train, choose the out-of-scope score on dev data, then answer the test split once."""
    from plugins.chatbot.engine import Chatbot
    from plugins.chatbot.evaluate import evaluate
    from plugins.chatbot.training import train_intent_model
    from services.training import LabeledText, split_train_validation

    params = {k: v for k, v in (("epochs", args.epochs), ("max_steps", args.max_steps)) if v}
    options = {
        "templates": str(templates),
        "out_of_scope_class": name.endswith("-class"),
        "synthetic_outliers": args.synthetic_outliers,
    }
    with tempfile.TemporaryDirectory(prefix=f"bench-chatbot-{name}-") as scratch:
        ctx = suite_context(Path(scratch), "chatbot", options, threads=args.threads)
        try:
            from plugins.chatbot.training import index_knowledge_base

            index_knowledge_base(ctx)
            print(
                f"{name}: fine-tuning on {len(data['train'])} messages, {len(data['examples'])} out-of-scope examples"
            )
            started = time.perf_counter()
            version = train_intent_model(ctx, data["train"], params=params or None, out_of_scope=data["examples"])
            wall = time.perf_counter() - started
            bot = Chatbot(ctx)
            model = bot.model()
            dev_in = data["dev_in"]
            if dev_in is None:  # no refit: the plugin's own validation split was never trained on
                _, dev_in = split_train_validation(
                    data["train"], fraction=bot.options.validation_fraction, seed=ctx.settings.training.seed
                )
                dev_in = sample(dev_in, DEV_LIMIT)
            if model.detector is None:
                raise SystemExit(f"{name}: too few validation messages to calibrate the out-of-scope detector")
            dev = dev_scores(model, dev_in, data["dev_out"]) if data["dev_out"] else {}
            chosen = max(dev, key=dev.get) if dev and not data["examples"] else model.detector.method
            bot = Chatbot(ctx, bot.options.model_copy(update={"out_of_scope_method": chosen}))
            bot.warm_up()
            test = data["test_in"] + [LabeledText(text, OOS_LABEL) for text in data["test_out"]]
            print(f"{name}: out-of-scope score {chosen}; answering {len(test)} test messages")
            evaluation = evaluate(bot, test, oos_label=OOS_LABEL)
            test_aurocs = dev_scores(model, data["test_in"], data["test_out"]) if data["test_out"] else {}
            result = {
                "name": name,
                "train": len(data["train"]),
                "examples": len(data["examples"]),
                "intents": len(model.labels) - (1 if OOS_LABEL in model.labels else 0),
                "wall": wall,
                "card_wall": version.card.wall_seconds,
                "hyperparameters": version.card.hyperparameters,
                "metrics": version.card.metrics,
                "evaluation": evaluation,
                "dev": dev,
                "dev_sizes": (len(dev_in), len(data["dev_out"])),
                "test_aurocs": test_aurocs,
                "method": chosen,
                "threshold": bot.model().detector.threshold,
                "refit": "refit_steps" in version.card.metrics,
            }
            if args.latency_messages and not args.latency_done:
                args.latency_done = True
                result["latency"] = compare_latency(bot, version.path, data["test_in"][: args.latency_messages], model)
            return result
        finally:
            ctx.shutdown()


def compare_latency(bot, model_dir: Path, rows: list, model) -> dict[str, list[float]]:
    """Chatbot.answer, then the pipeline, then the bare classifier, one message per call, same messages."""
    from bench.peers import hf_pipeline

    max_length = int(model.version.card.hyperparameters.get("max_length") or 128)
    pipeline = hf_pipeline(model_dir, max_length=max_length)
    pipeline(["warm up"], 1)
    timings: dict[str, list[float]] = {"Chatbot.answer": [], "pipeline": [], "intent classifier alone": []}
    for row in rows:
        for name, call in (
            ("Chatbot.answer", lambda text: bot.answer(text)),
            ("pipeline", lambda text: pipeline([text], 1)),
            ("intent classifier alone", lambda text: model.predict(text)),
        ):
            started = time.perf_counter()
            call(row.text)
            timings[name].append(time.perf_counter() - started)
    return timings


def held_out_intents(run: str, intents: list[str], count: int) -> set[str]:
    if run == "banking77-oos":
        return set(BANKING77_OOS_HELD_OUT) & set(intents)
    return set(random.Random(42).sample(intents, count)) if run.startswith("oos") else set()


def run_data(run: str, train: list, test: list, intents: list[str], args) -> dict[str, list]:
    """Training rows, out-of-scope examples, dev and test messages of one run."""
    held_out = held_out_intents(run, intents, args.oos_intents)
    inside = [row for row in train if row.label not in held_out]
    outside_train = [row for row in train if row.label in held_out]
    rows = per_intent(inside, args.per_intent) if "per-intent" in run else inside
    examples = per_intent(outside_train, args.per_intent) if run.endswith(("-examples", "-class")) else []
    given = {id(row) for row in examples}
    trained = {id(row) for row in rows}
    return {
        "train": rows,
        "examples": [row.text for row in examples],
        # refit runs train on their validation split: dev in-scope messages come from outside the sample
        "dev_in": sample([row for row in inside if id(row) not in trained], DEV_LIMIT) if "per-intent" in run else None,
        "dev_out": [row.text for row in sample([r for r in outside_train if id(r) not in given], DEV_LIMIT)],
        "test_in": sample([row for row in test if row.label not in held_out], args.test_limit),
        "test_out": [row.text for row in sample([row for row in test if row.label in held_out], args.test_limit)],
    }


def main() -> None:
    args = parse_args()
    args.latency_done = False
    set_threads(args.threads)
    train = load_labeled("banking77", "train")
    test = load_labeled("banking77", "test")
    intents = sorted({row.label for row in train})
    if args.intents:
        intents = intents[: args.intents]
        train = [row for row in train if row.label in intents]
        test = [row for row in test if row.label in intents]
    if args.report_on == "dev":
        test = per_intent(train, DEV_PER_INTENT, seed=DEV_SEED)
        held = {id(row) for row in test}
        train = [row for row in train if id(row) not in held]
    runs = [run.strip() for run in args.runs.split(",") if run.strip()]
    unknown = set(runs) - set(ALL_RUNS)
    if unknown:
        raise SystemExit(f"unknown run(s) {', '.join(sorted(unknown))} (choose {', '.join(ALL_RUNS)})")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-chatbot-") as scratch:
        templates = write_templates(Path(scratch) / "templates.json", intents)
        for run in runs:
            results.append(run_setting(run, run_data(run, train, test, intents, args), args, templates))
            report(args, results)  # after every run, so a cut-short session keeps what finished


def describe(name: str, args) -> str:
    n, k = args.per_intent, args.oos_intents
    outliers = f", synthetic outliers x{args.synthetic_outliers:g}" if args.synthetic_outliers else ""
    return {
        "oos": f"all data, {k} intents out of scope",
        "oos-per-intent": f"{n} per intent, {k} intents out of scope",
        "oos-per-intent-examples": f"{n} per intent, {k} out of scope, {n} oos examples each (calibration)",
        "oos-per-intent-class": f"{n} per intent, {k} out of scope, {n} oos examples each (extra class)",
        "oos-examples": f"all data, {k} out of scope, {n} oos examples each (calibration)",
        "oos-class": f"all data, {k} out of scope, {n} oos examples each (extra class)",
        "banking77-oos": f"BANKING77-OOS, in-domain: all data, {len(BANKING77_OOS_HELD_OUT)} intents out of scope",
        "all": "all training data",
        "per-intent": f"{n} examples per intent",
    }[name] + outliers


def weighed(metrics: dict[str, Any]) -> str:
    """The weight knn_examples gave the cosine to the nearest out-of-scope example, where it has one."""
    weight = metrics.get("out_of_scope_examples_weight")
    return "" if weight is None else f", out-of-scope examples weighed {weight:g} in knn_examples"


def report(args, results: list[dict[str, Any]]) -> None:
    from plugins.chatbot.evaluate import ROUTES
    from plugins.chatbot.ood import METHODS

    rows = [
        [
            describe(r["name"], args),
            r["intents"],
            r["train"],
            f"{r['evaluation'].accuracy:.4f}",
            f"{r['evaluation'].macro_f1:.4f}",
            f"{r['card_wall']:.0f}",
            f"{r['wall']:.0f}",
        ]
        for r in results
    ]
    method_rows = [
        [
            describe(r["name"], args),
            f"{r['dev_sizes'][0]} / {len(r['dev']) and r['dev_sizes'][1]}",
            *[_auroc(r["dev"].get(m)) for m in METHODS],
            r["method"],
            *[_auroc(r["test_aurocs"].get(m)) for m in METHODS],
        ]
        for r in results
        if r["evaluation"].out_of_scope
    ]
    route_rows = []
    for r in results:
        evaluation = r["evaluation"]
        for scope, count in (("in scope", evaluation.in_scope), ("out of scope", evaluation.out_of_scope)):
            if count:
                shares = evaluation.shares(scope.replace(" ", "_"))
                caught = f"{evaluation.caught:.1%}" if scope == "out of scope" else "-"
                route_rows.append(
                    [describe(r["name"], args), scope, count, *(f"{shares[k]:.1%}" for k in ROUTES), caught]
                )
    first = results[0]["hyperparameters"] if results else {}
    settings = ", ".join(
        f"{k} {first[k]}" for k in ("epochs", "batch_size", "learning_rate", "max_length") if k in first
    )
    thresholds = "; ".join(
        f"{describe(r['name'], args)}: {r['method']} score > {r['threshold']:.4g}, clarifying question below "
        f"margin {r['metrics'].get('margin_threshold')}" + weighed(r["metrics"])
        for r in results
    )
    body = [
        "Data: BANKING77 (train/test), "
        + (f"the first {args.intents} intents only; " if args.intents else "")
        + f"fine-tuned through `train_intent_model` with the plugin's defaults ({settings}); the plugin holds out "
        "20% of the given examples to calibrate its thresholds (a 5% false-rejection rate for the out-of-scope "
        "score, at most 5% clarifying questions) and refits on every example below 50 per intent (the "
        "out-of-scope thresholds then stay the first run's). The out-of-scope score is chosen per run by its "
        "AUROC on dev data from the training split (in scope / out of scope counts below); the test split is "
        "read once, by `plugins.chatbot.evaluate.evaluate`.",
        "",
        table(
            [
                "run",
                "intents",
                "examples given",
                "test accuracy",
                "test macro F1",
                "fine-tuning s",
                "with calibration s",
            ],
            rows,
        ),
        "",
        "Out-of-scope AUROC of each score, on dev data (chooses) and on the test split (reported only); with "
        "out-of-scope examples the plugin chooses on its own held-out ones:",
        "",
        table(
            ["run", "dev in / out", *[f"dev {m}" for m in METHODS], "chosen", *[f"test {m}" for m in METHODS]],
            method_rows,
        ),
        "",
        "Where `Chatbot.answer` sent the test messages (each a new conversation; every intent has a template, so "
        "a template answer is a committed intent; 'caught' = retrieval + out-of-scope answer + hand-off):",
        "",
        table(["run", "messages", "count", *ROUTES, "caught"], route_rows),
        "",
        f"Thresholds: {thresholds}.",
    ]
    latency = next((r["latency"] for r in results if "latency" in r), None)
    if latency:
        ours, peer = latency["Chatbot.answer"], latency["pipeline"]
        body += [
            "",
            f"Answer latency, {len(ours)} test messages, one per call, on the first run's model:",
            "",
            table(
                ["path", "median ms", "p95 ms"],
                [
                    [name, f"{statistics.median(v) * 1000:.1f}", f"{percentile(v, 95) * 1000:.1f}"]
                    for name, v in latency.items()
                ],
            ),
            "",
            f"Chatbot.answer / pipeline: median {ratio(statistics.median(ours), statistics.median(peer))}, "
            f"p95 {ratio(percentile(ours, 95), percentile(peer, 95))} (the answer does more: input checks, the "
            "out-of-scope score, thresholds, templates or retrieval, and it writes the conversation log). "
            + "; ".join(f"{name}: {latency_summary(v)}" for name, v in latency.items()),
        ]
    requested = [run.strip() for run in args.runs.split(",") if run.strip()]
    title = "Chatbot" if set(requested) == set(DEFAULT_RUNS) else f"Chatbot {'+'.join(requested)}"
    if args.report_on == "dev":
        title += " on the dev set"
        body.insert(
            0,
            f"**Scored on a dev set**: {DEV_PER_INTENT} training messages per intent, left out of "
            "every run's training data, in place of the test split (the columns still say test).\n",
        )
    if len(results) < len(requested):
        body.append(f"\n(Partial: {len(results)} of {len(requested)} runs finished when this was written.)")
    write_results(title, command_line("bench.chatbot"), "\n".join(body))


def _auroc(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    main()

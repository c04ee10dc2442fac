"""Hook specifications: everything a plugin can contribute to the suite.

A plugin is a module (or object) with functions named after these hooks and decorated
with :data:`hookimpl`. It is discovered through the ``suite.plugins`` entry-point group.
Every hook receives only the arguments it names, so a plugin may accept a subset
(pluggy passes arguments by name). Hooks are called in the order documented on each,
and a plugin that implements a name starting with ``suite_`` that is not listed here
is rejected at start-up.

``ctx`` is always the :class:`suite.context.SuiteContext`: the effective settings and
lazy handles to the shared services (``ctx.preprocessor``, ``ctx.embedder()``,
``ctx.search``, ``ctx.trainer``, ``ctx.registry``, ``ctx.alerts``, ``ctx.database``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter
    from pydantic import BaseModel
    from spacy.language import Language

    from services.alerts import AlertSink
    from services.scheduling import JobSpec
    from services.search import IndexSpec
    from suite.context import SuiteContext
    from suite.plugins import PluginInfo
    from suite.training_tasks import TrainingTask

PROJECT_NAME = "suite"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec(firstresult=True)
def suite_plugin_info() -> PluginInfo:
    """Describe the plugin.

    Called when the plugin is listed (``suite plugins``, ``GET /api/plugins``), once per
    plugin and only on that plugin.

    :return: a :class:`suite.plugins.PluginInfo` with a one-line ``description`` and,
        optionally, a ``version`` (default: the installed distribution's version).
    """


@hookspec(firstresult=True)
def suite_config_model() -> type[BaseModel]:
    """Declare the schema of the plugin's own options.

    Called once at start-up, on that plugin only, before ``suite_startup``. The returned
    pydantic model validates the ``[plugins.<name>]`` table of the config file (less the
    core's ``enabled`` and ``backbone`` keys); a validation failure stops start-up with
    a one-line error naming the table and the key. Read the result with
    ``ctx.plugin_options(name)``.

    :return: a pydantic ``BaseModel`` subclass whose fields all have defaults.
    """


@hookspec
def suite_startup(ctx: SuiteContext) -> None:
    """Prepare the plugin once the configuration and services are ready.

    Called once per process, after every plugin is registered and configured, before
    any command, request or job runs. Keep it cheap: load models lazily on first use.
    """


@hookspec
def suite_shutdown(ctx: SuiteContext) -> None:
    """Release what ``suite_startup`` or later calls acquired (connections, threads).

    Called once when the process stops cleanly, in reverse registration order. An
    exception here is logged with the plugin's name and does not stop the others.
    """


@hookspec
def suite_cli_commands(cli: typer.Typer, ctx: SuiteContext) -> None:
    """Add commands or command groups to the ``suite`` CLI.

    Called once when the CLI is built, before arguments are parsed. Add a group with
    ``cli.add_typer(group, name="chatbot")`` or a command with ``@cli.command()``.
    Raise :class:`suite.errors.SuiteError` subclasses inside commands for one-line
    errors; the CLI turns them into a message and a non-zero exit.
    """


@hookspec
def suite_http_routers(ctx: SuiteContext) -> APIRouter | list[APIRouter] | None:
    """Contribute HTTP routes (JSON APIs and pages) to the FastAPI app.

    Called once when the app is created. Each router is mounted as given, so choose a
    prefix of your own (``/api/<plugin>`` for JSON, ``/<plugin>`` for pages). The core
    adds authentication, limits, error shapes and OpenAPI documentation.

    Declare CPU-bound endpoints (model inference) with a plain ``def`` so they run in
    the thread pool and never block the event loop; load models once, not per request.
    Validate user text with :func:`suite.http.limits.check_texts`; raise
    :class:`suite.errors.SuiteError` subclasses (``NotFoundError`` → 404, ``DataError``
    → 422, others → 400). A route that must be open without an API key (an HTML page)
    is declared with ``openapi_extra=suite.http.PUBLIC``. See :mod:`suite.app`.

    :return: one ``fastapi.APIRouter``, a list of them, or ``None``.
    """


@hookspec
def suite_training_tasks(ctx: SuiteContext) -> list[TrainingTask]:
    """Declare the models this plugin fine-tunes.

    Called when ``suite train`` or ``suite models`` needs the list. Each
    :class:`suite.training_tasks.TrainingTask` names a task (``intent``, ``sentiment``,
    ``biencoder``...), its kind (``classification`` or ``biencoder``) and a ``run``
    callable that loads the plugin's data, fine-tunes through ``ctx.trainer`` and
    registers the result in ``ctx.registry``.

    :return: a list of training tasks (possibly empty).
    """


@hookspec
def suite_pretraining_texts(ctx: SuiteContext) -> list[str]:
    """Offer the plugin's own unlabelled text for continued pre-training and distillation.

    Called by ``suite pretrain PLUGIN`` (without ``--texts``) on that plugin only, and by
    ``suite train PLUGIN:TASK --teacher REF --transfer plugin`` for transfer texts. Return
    the text the plugin holds that resembles what its models will read: stored documents,
    logged user messages, knowledge-base passages, item descriptions, the texts of its
    training data. The masked-LM run adapts the plugin's backbone to it (domain- and
    task-adaptive pre-training); a distillation run adds the teacher's scores of it to the
    student's training data.

    Never return texts the plugin's models are evaluated on (a test split), and keep the
    call cheap enough to run before a training run (read from the store, no model calls).
    Duplicates and empty strings are dropped by the caller.

    :return: a list of strings, one document each (possibly empty).
    """


@hookspec
def suite_entity_patterns(ctx: SuiteContext) -> list[dict[str, Any]]:
    """Add entity patterns to the shared spaCy pipeline's entity ruler.

    Called once, the first time the shared pipeline is loaded. Patterns use spaCy's
    ``EntityRuler`` format, e.g. ``{"label": "TICKER", "pattern": [{"ORTH": "$"}, {"TEXT":
    {"REGEX": "^[A-Z]{1,5}$"}}]}`` (spaCy splits "$AAPL" into two tokens) or
    ``{"label": "CARD_TYPE", "pattern": "debit card"}``;
    an ``id`` key links a match to an entity of the plugin's own. Patterns from all
    plugins share one ruler placed before the statistical NER, so they win overlaps.

    :return: a list of pattern dicts.
    """


@hookspec
def suite_pipeline_components(nlp: Language, ctx: SuiteContext) -> None:
    """Add or configure components of the shared spaCy pipeline.

    Called once, right after ``suite_entity_patterns`` is applied. Use
    ``nlp.add_pipe(...)`` with a registered factory; components must be safe for every
    plugin's documents, since the pipeline is shared.
    """


@hookspec
def suite_search_indexes(ctx: SuiteContext) -> list[IndexSpec]:
    """Declare the search indexes the plugin writes to.

    Called at start-up of commands that touch search (``suite search ...``) and by
    ``ctx.search`` to create missing indexes with the right mapping.

    :return: a list of :class:`services.search.IndexSpec` (name, vector dimension).
    """


@hookspec
def suite_scheduled_jobs(ctx: SuiteContext) -> list[JobSpec]:
    """Contribute jobs to the scheduler process (``suite scheduler run``).

    Called when the scheduler starts and by ``suite jobs list|run``. Job names must be
    unique across plugins; prefix them with the plugin's name. A job that raises is
    recorded as failed with its plugin's name and does not stop the scheduler.

    :return: a list of :class:`services.scheduling.JobSpec`.
    """


@hookspec
def suite_alert_sinks(ctx: SuiteContext) -> list[AlertSink]:
    """Contribute alert sinks beside the built-in log, webhook and e-mail sinks.

    Called once, when ``ctx.alerts`` is first used. Each sink receives every alert;
    one sink that raises is recorded and does not stop delivery to the others.

    :return: a list of objects with a ``name`` and a ``send(alert)`` method.
    """


@hookspec
def suite_cli_examples(ctx: SuiteContext) -> list[list[str]]:
    """Show how to use the plugin: CLI invocations that work on the shipped sample data.

    Called by ``suite quickstart``, which first trains every declared task on its sample
    data and then runs each example in order, and by ``suite plugins --examples``.
    Each example is an argument list without the leading ``suite``, e.g.
    ``["chatbot", "ask", "I lost my card"]``.

    :return: a list of argument lists.
    """

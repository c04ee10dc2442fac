"""Hook specifications: everything a plugin can contribute to the suite.

A plugin is a module (or object) with functions named after these hooks and decorated
with :data:`hookimpl`. It is discovered through the ``suite.plugins`` entry-point group.
Every hook receives only the arguments it names, so a plugin may accept a subset
(pluggy passes arguments by name). A plugin that implements a name starting with
``suite_`` that is not listed here is rejected at start-up.

Every call goes through pluggy's hook caller, so pluggy's documented semantics hold:
implementations run last-registered first, ``@hookimpl(tryfirst=True)`` /
``trylast=True`` move one to the front / back, ``wrapper=True`` and ``hookwrapper=True``
implementations wrap the others, and a ``firstresult`` hook stops at the first
non-``None`` result. :data:`DISPATCH` says, per hook, how the core calls it (the
"Dispatch" paragraph of each docstring says the same; see docs/plugins.md, "Call order,
wrappers and isolation").

``ctx`` is always the :class:`suite.context.SuiteContext`: the effective settings and
lazy handles to the shared services (``ctx.preprocessor``, ``ctx.embedder()``,
``ctx.search``, ``ctx.trainer``, ``ctx.registry``, ``ctx.alerts``, ``ctx.database``).
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter
    from pydantic import BaseModel
    from spacy.language import Language

    from services.alerts import AlertSink
    from services.scheduling import JobSpec
    from services.schema import MigrationHistory
    from services.search import IndexSpec
    from suite.context import SuiteContext
    from suite.plugins import PluginInfo
    from suite.training_tasks import TrainingTask

PROJECT_NAME = "suite"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class Dispatch(Enum):
    """How the core calls a hook. Each is a pluggy hook call: order, wrappers and firstresult are pluggy's."""

    PER_PLUGIN = "per plugin"
    """About one plugin: that plugin's implementations only, inside every plugin's wrappers."""
    ISOLATED = "isolated"
    """One call per plugin that implements it (pluggy's order, every wrapper around each call); a plugin that
    raises is recorded in ``ctx.plugins.failures`` and the others still run."""
    STRICT = "strict"
    """Like ``ISOLATED``, but the first plugin that raises stops the call with a ``PluginError`` naming it."""


@hookspec(firstresult=True)
def suite_plugin_info() -> PluginInfo:
    """Describe the plugin.

    Called when the plugin is listed (``suite plugins``, ``GET /api/plugins``), once per
    plugin and only on that plugin.

    Dispatch: per plugin, ``firstresult``: the plugin's first non-``None`` answer
    counts, inside every plugin's wrappers. One that raises marks that plugin ``failed``
    in the listing; the others are still listed.

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

    Dispatch: per plugin, ``firstresult``, inside every plugin's wrappers. An exception
    stops start-up.

    :return: a pydantic ``BaseModel`` subclass whose fields all have defaults.
    """


@hookspec
def suite_startup(ctx: SuiteContext) -> None:
    """Prepare the plugin once the configuration and services are ready.

    Called once per process, after every plugin is registered and configured, before
    any command, request or job runs. Keep it cheap: load models lazily on first use.

    Dispatch: isolated, in pluggy's order (last registered first;
    ``tryfirst``/``trylast`` honoured). A plugin that raises is recorded and logged; the
    others still start.
    """


@hookspec
def suite_warm_up(ctx: SuiteContext) -> None:
    """Load now what a request would otherwise load on first use (models, indexes, pipelines).

    Called by the HTTP server at start-up, after ``suite_startup`` and before the server
    answers any request, ``/ready`` included, so that the first request is as fast as the
    hundredth. Never called by one-shot CLI commands, which load only what they use. Do
    nothing for what is not trained or configured yet.

    Dispatch: isolated, in pluggy's order (last registered first;
    ``tryfirst``/``trylast`` honoured). A plugin that raises is recorded (``/ready`` reports
    it) and logged; the others still warm up and the server starts.
    """


@hookspec
def suite_shutdown(ctx: SuiteContext) -> None:
    """Release what ``suite_startup`` or later calls acquired (connections, threads).

    Called once when the process stops cleanly, only if ``suite_startup`` ran.

    Dispatch: isolated, in pluggy's order (last registered first;
    ``tryfirst``/``trylast`` honoured). An exception here is logged with the plugin's
    name and does not stop the others.
    """


@hookspec
def suite_cli_commands(cli: typer.Typer, ctx: SuiteContext) -> None:
    """Add commands or command groups to the ``suite`` CLI.

    Called once when the CLI is built, before arguments are parsed. Add a group with
    ``cli.add_typer(group, name="chatbot")`` or a command with ``@cli.command()``.
    Raise :class:`suite.errors.SuiteError` subclasses inside commands for one-line
    errors; the CLI turns them into a message and a non-zero exit.

    Dispatch: isolated, in pluggy's order (last registered first;
    ``tryfirst``/``trylast`` honoured). A plugin that raises is recorded and logged; the
    CLI is built without its commands.
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

    Dispatch: isolated, in pluggy's order (last registered first;
    ``tryfirst``/``trylast`` honoured). A plugin that raises, or returns something other
    than a router, is recorded; the app starts without that plugin's routes.

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

    Dispatch: isolated, in pluggy's order (last registered first;
    ``tryfirst``/``trylast`` honoured). A plugin that raises is recorded and logged, and
    declares no tasks this time.

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

    Dispatch: per plugin (only the plugin being trained is asked), inside every plugin's
    wrappers. An exception stops the run with one line naming the plugin.

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

    Dispatch: isolated, in pluggy's order (last registered first;
    ``tryfirst``/``trylast`` honoured). A plugin that raises is recorded and contributes
    no patterns; an invalid pattern stops the pipeline's construction with a
    ``PluginError`` naming the plugin.

    :return: a list of pattern dicts.
    """


@hookspec
def suite_pipeline_components(nlp: Language, ctx: SuiteContext) -> None:
    """Add or configure components of the shared spaCy pipeline.

    Called once, right after ``suite_entity_patterns`` is applied. Use
    ``nlp.add_pipe(...)`` with a registered factory; components must be safe for every
    plugin's documents, since the pipeline is shared.

    Dispatch: isolated, in pluggy's order (last registered first;
    ``tryfirst``/``trylast`` honoured). A plugin that raises is recorded; the pipeline
    is built without its components.
    """


@hookspec
def suite_search_indexes(ctx: SuiteContext) -> list[IndexSpec]:
    """Declare the search indexes the plugin writes to.

    Called at start-up of commands that touch search (``suite search ...``) and by
    ``ctx.search`` to create missing indexes with the right mapping.

    Dispatch: isolated, in pluggy's order (last registered first;
    ``tryfirst``/``trylast`` honoured). A plugin that raises is recorded and declares no
    indexes this time.

    :return: a list of :class:`services.search.IndexSpec` (name, vector dimension).
    """


@hookspec
def suite_scheduled_jobs(ctx: SuiteContext) -> list[JobSpec]:
    """Contribute jobs to the scheduler process (``suite scheduler run``).

    Called when the scheduler starts and by ``suite jobs list|run``. Job names must be
    unique across plugins; prefix them with the plugin's name. A job that raises is
    recorded as failed with its plugin's name and does not stop the scheduler.

    Dispatch: isolated, in pluggy's order (last registered first;
    ``tryfirst``/``trylast`` honoured). A plugin that raises, or returns something other
    than a ``JobSpec``, is recorded; the other plugins' jobs still run.

    :return: a list of :class:`services.scheduling.JobSpec`.
    """


@hookspec
def suite_migrations(ctx: SuiteContext) -> MigrationHistory | list[MigrationHistory] | None:
    """Declare the Alembic migrations that create and change the plugin's tables.

    Called before ``ctx.database`` is first handed out and by ``suite db current|upgrade``.
    A history is a folder of Alembic revision files inside the plugin's package and a
    name; it gets its own version table (``alembic_version_<name>``), so it never
    meets another package's revisions. Tables live in ``ctx.database`` unless the
    history says ``database="jobstore"``. Do not call ``create_all``: the core creates
    absent tables from the migrations on first use, and upgrades an existing schema as
    the README's rule says (``suite serve`` and ``suite scheduler run`` refuse to
    start on an outdated one). How to write a revision: :mod:`services.schema` and
    ``docs/plugins.md`` ("Database schema").

    Dispatch: isolated, in pluggy's order (last registered first;
    ``tryfirst``/``trylast`` honoured). A plugin that raises is recorded and its tables
    are not created.

    :return: a :class:`services.schema.MigrationHistory` (or a list of them), e.g.
        ``MigrationHistory("tickets", Path(__file__).parent / "migrations")``.
    """


@hookspec
def suite_alert_sinks(ctx: SuiteContext) -> list[AlertSink]:
    """Contribute alert sinks beside the built-in log, webhook and e-mail sinks.

    Called once, when ``ctx.alerts`` is first used. Each sink receives every alert;
    one sink that raises is recorded and does not stop delivery to the others. Alerts
    queued in ``ctx.alert_outbox`` reach a sink through the core's delivery job, one
    ``send`` per attempt: it should not retry or sleep itself, its ``name`` must be
    unique and stable, and ``alert.idempotency_key`` (the same on every attempt) lets
    the receiver drop repeats.

    Dispatch: isolated, in pluggy's order (last registered first;
    ``tryfirst``/``trylast`` honoured). A plugin that raises is recorded and contributes
    no sinks.

    :return: a list of objects with a ``name`` and a ``send(alert)`` method.
    """


@hookspec
def suite_cli_examples(ctx: SuiteContext) -> list[list[str]]:
    """Show how to use the plugin: CLI invocations that work on the shipped sample data.

    Called by ``suite quickstart``, which first trains every declared task on its sample
    data and then runs each example in order, and by ``suite plugins --examples``.
    Each example is an argument list without the leading ``suite``, e.g.
    ``["chatbot", "ask", "I lost my card"]``.

    Dispatch: isolated, in pluggy's order (last registered first;
    ``tryfirst``/``trylast`` honoured). A plugin that raises is recorded and shows no
    examples.

    :return: a list of argument lists.
    """


#: How the core calls each hook (see :class:`Dispatch`). A new hook is added here too: a test checks every
#: specification has an entry.
DISPATCH: dict[str, Dispatch] = {
    "suite_plugin_info": Dispatch.PER_PLUGIN,
    "suite_config_model": Dispatch.PER_PLUGIN,
    "suite_startup": Dispatch.ISOLATED,
    "suite_warm_up": Dispatch.ISOLATED,
    "suite_shutdown": Dispatch.ISOLATED,
    "suite_cli_commands": Dispatch.ISOLATED,
    "suite_http_routers": Dispatch.ISOLATED,
    "suite_training_tasks": Dispatch.ISOLATED,
    "suite_entity_patterns": Dispatch.ISOLATED,
    "suite_pipeline_components": Dispatch.ISOLATED,
    "suite_search_indexes": Dispatch.ISOLATED,
    "suite_scheduled_jobs": Dispatch.ISOLATED,
    "suite_migrations": Dispatch.ISOLATED,
    "suite_pretraining_texts": Dispatch.PER_PLUGIN,
    "suite_alert_sinks": Dispatch.ISOLATED,
    "suite_cli_examples": Dispatch.ISOLATED,
}

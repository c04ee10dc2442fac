"""The core's own hook implementations, registered like a plugin (as pytest registers its built-ins).

They live here, not in a plugin, because they serve every plugin: any plugin may raise
alerts, so the job that delivers them belongs to the core. The built-in plugin is named
``suite`` and is not listed by ``suite plugins``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from suite.hookspecs import hookimpl

if TYPE_CHECKING:
    from services.scheduling import JobSpec
    from suite.context import SuiteContext

NAME = "suite"
DELIVERY_JOB = "suite.deliver_alerts"


def deliver_alerts(ctx: SuiteContext) -> dict[str, Any]:
    """One pass of the alert outbox: send what is due, schedule retries, give up on the too old."""
    return ctx.alert_outbox.deliver_due().to_dict()


@hookimpl
def suite_scheduled_jobs(ctx: SuiteContext) -> list[JobSpec]:
    from services.scheduling import JobSpec

    every = max(1, round(ctx.settings.alerts.delivery_interval.total_seconds()))
    return [
        JobSpec(
            name=DELIVERY_JOB,
            func=lambda: deliver_alerts(ctx),
            trigger="interval",
            trigger_args={"seconds": every},
            description="send due alert deliveries; retry failed ones with back-off",
            plugin=NAME,
        )
    ]

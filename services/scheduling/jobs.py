"""What a plugin declares: :class:`JobSpec`, and how a spec becomes an APScheduler trigger."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, Literal

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from services.settings import SchedulerConfig

TRIGGERS: dict[str, type[BaseTrigger]] = {"interval": IntervalTrigger, "cron": CronTrigger}


@dataclass
class JobSpec:
    """A job a plugin contributes through ``suite_scheduled_jobs``.

    ``trigger_args`` are APScheduler's: ``{"minutes": 15}`` for ``interval``,
    ``{"hour": "*/2", "minute": 0}`` for ``cron``. ``None`` options fall back to the
    ``[scheduler]`` config section.
    """

    name: str
    func: Callable[[], Any]
    trigger: Literal["interval", "cron"]
    trigger_args: dict[str, Any]
    description: str = ""
    plugin: str = ""
    misfire_grace_time: int | None = None
    coalesce: bool | None = None
    max_instances: int = 1

    def __post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise ValueError("a scheduled job needs a name")
        if self.trigger not in TRIGGERS:
            raise ValueError(f"job '{self.name}': trigger must be 'interval' or 'cron', not {self.trigger!r}")
        if not callable(self.func):
            raise ValueError(f"job '{self.name}': func is not callable")
        if self.max_instances < 1:
            raise ValueError(f"job '{self.name}': max_instances must be at least 1")

    def describe_trigger(self) -> str:
        """Human form of the schedule: ``every 15 minutes``, ``cron hour=*/2 minute=0``."""
        if self.trigger == "interval":
            return "every " + ", ".join(f"{value} {key}" for key, value in self.trigger_args.items())
        return " ".join(["cron", *(f"{key}={value}" for key, value in self.trigger_args.items())])


def build_trigger(spec: JobSpec, timezone: tzinfo) -> BaseTrigger:
    """The APScheduler trigger for ``spec``; ValueError with the job's name if its arguments are wrong."""
    args = {"timezone": timezone, **spec.trigger_args}
    try:
        return TRIGGERS[spec.trigger](**args)
    except (TypeError, ValueError) as exc:
        message = f"job '{spec.name}': invalid {spec.trigger} trigger {spec.trigger_args}: {exc}"
        raise ValueError(message) from None


def job_options(spec: JobSpec, config: SchedulerConfig) -> dict[str, Any]:
    """Misfire grace time, coalescing and instance limit: the spec's own, else the config's."""
    return {
        "misfire_grace_time": spec.misfire_grace_time or config.misfire_grace_time,
        "coalesce": config.coalesce if spec.coalesce is None else spec.coalesce,
        "max_instances": spec.max_instances,
    }


def schedule_fingerprint(spec: JobSpec, config: SchedulerConfig) -> str:
    """A digest of everything that decides when a job fires.

    Stored with the job, so that a restarted scheduler can tell an unchanged job (keep
    its persisted next run time) from a changed one (reschedule it).
    """
    described = {
        "trigger": spec.trigger,
        "args": spec.trigger_args,
        "timezone": config.timezone,
        **job_options(spec, config),
    }
    encoded = json.dumps(described, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]

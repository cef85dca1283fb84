"""Training: start it (TrainProject), wait for the iteration, and train after a sync that changed
enough (`train_after_sync`).

Public names: start_training, wait_for_iteration, train_after_sync, changed_images,
TrainingNotNeeded, EXIT_NOTHING_TO_TRAIN, NOT_NEEDED_CODES.

"Nothing changed since the last training" is the service's 400 BadRequestTrainingNotNeeded (or
BadRequestTrainingNotNeededButTrainingPipelineUpdated); it becomes `TrainingNotNeeded`, which the
CLI prints as one line and exit code 4 (EXIT_NOTHING_TO_TRAIN).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog

from syncd.api import ApiError, BadRequestError, Iteration, TrainingClient, TrainingType

if TYPE_CHECKING:
    from syncd.config import MirrorConfig
    from syncd.sync import MirrorReport

_log = structlog.get_logger(component="train")

EXIT_NOTHING_TO_TRAIN = 4
NOT_NEEDED_CODES = frozenset(
    {"BadRequestTrainingNotNeeded", "BadRequestTrainingNotNeededButTrainingPipelineUpdated"}
)
FIRST_POLL_S = 0.5
MAX_POLL_S = 10.0


class TrainingNotNeeded(Exception):
    """The service found nothing changed since the last training; the message says so."""


async def start_training(
    client: TrainingClient,
    project_id: str,
    *,
    force: bool = False,
    advanced: bool = False,
    budget_hours: int = 0,
    notify: str | None = None,
) -> Iteration:
    """Start training; return the new iteration; raise TrainingNotNeeded or ApiError."""
    try:
        return await client.train_project(
            project_id,
            force=force,
            training_type=TrainingType.ADVANCED if advanced else TrainingType.REGULAR,
            reserved_budget_hours=budget_hours,
            notification_email=notify,
        )
    except BadRequestError as exc:
        if exc.code in NOT_NEEDED_CODES:
            raise TrainingNotNeeded(
                f"nothing changed in project {project_id} since its last training, so the "
                "service did not train (`syncd train --force` trains anyway)"
            ) from None
        raise


async def wait_for_iteration(
    client: TrainingClient,
    project_id: str,
    iteration: Iteration,
    *,
    on_poll: Callable[[Iteration, float], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Iteration:
    """Poll the iteration until it is no longer training (backing off from 0.5 s to 10 s
    between polls); return it as it ended (Completed or Failed)."""
    started = time.monotonic()
    delay = FIRST_POLL_S
    while not iteration.finished:
        await sleep(delay)
        delay = min(delay * 2, MAX_POLL_S)
        iteration = await client.get_iteration(project_id, iteration.id)
        if on_poll is not None:
            on_poll(iteration, time.monotonic() - started)
    return iteration


def changed_images(report: MirrorReport) -> int:
    """Images a finished reconcile changed: uploads, deletes, and images retagged."""
    if report.execution is None:
        return 0
    done = report.execution.done
    retagged = {a.image_id for a in report.plan.add_tags}
    retagged.update(r.image_id for r in report.plan.remove_tags)
    return done.get("uploads", 0) + done.get("delete_images", 0) + len(retagged)


async def train_after_sync(
    client: TrainingClient, mirror: MirrorConfig, report: MirrorReport
) -> dict[str, Any] | None:
    """Start training if the mirror asks for it after a sync and this one changed enough and
    finished with everything done; return what happened (None: not asked or not enough).
    A refusal is reported in the result, never raised: the sync itself succeeded."""
    threshold = mirror.train_after_sync
    changed = changed_images(report)
    if not threshold or report.dry_run or report.exit_code != 0 or changed < threshold:
        return None
    result: dict[str, Any] = {"changed_images": changed, "threshold": threshold}
    try:
        iteration = await start_training(client, mirror.project_id)
    except TrainingNotNeeded as exc:
        result.update(started=False, reason=str(exc))
    except ApiError as exc:
        result.update(started=False, reason=str(exc))
    else:
        result.update(started=True, iteration_id=str(iteration.id), iteration=iteration.name)
    _log.info("train_after_sync", mirror=mirror.name, **result)
    return result

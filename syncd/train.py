"""Training: start it (TrainProject), wait for the iteration, and train after a sync that changed
enough (`train_after_sync`).

Public names: start_training, wait_for_iteration, train_after_sync, POLL_BACKOFF.

"Nothing changed since the last training" is the service's TrainingNotNeededError; it becomes
`NothingToTrainError` (syncd.errors), which the CLI prints as one line and exit code 4.

This module knows nothing of a reconcile: `syncd.reconcile` counts the images a run changed and
calls `train_after_sync` with that number.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog

from syncd.api import (
    ApiError,
    BadRequestError,
    Iteration,
    TrainingClient,
    TrainingNotNeededError,
    TrainingType,
)
from syncd.api.pacer import Backoff
from syncd.errors import NothingToTrainError, TrainingRefusedError

if TYPE_CHECKING:
    from syncd.config import MirrorConfig

_log = structlog.get_logger(component="train")

# Between polls of an iteration in training: 0.5 s doubling to 10 s, without jitter (one
# poller, and the service's own time to train is what it waits on).
POLL_BACKOFF = Backoff(first_s=0.5, max_s=10.0, jitter=0.0)


async def start_training(
    client: TrainingClient,
    project_id: str,
    *,
    force: bool = False,
    advanced: bool = False,
    budget_hours: int = 0,
    notify: str | None = None,
) -> Iteration:
    """Start training; return the new iteration; raise NothingToTrainError, TrainingRefusedError
    (any other 400, e.g. too few images per tag: the data, not syncd) or ApiError."""
    try:
        return await client.train_project(
            project_id,
            force=force,
            training_type=TrainingType.ADVANCED if advanced else TrainingType.REGULAR,
            reserved_budget_hours=budget_hours,
            notification_email=notify,
        )
    except TrainingNotNeededError:
        raise NothingToTrainError(
            f"nothing changed in project {project_id} since its last training, so the "
            "service did not train (`syncd train --force` trains anyway)"
        ) from None
    except BadRequestError as exc:  # the data's fault (validation, too few images per tag...)
        raise TrainingRefusedError(str(exc)) from None


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
    polls = 0
    while not iteration.finished:
        polls += 1
        await sleep(POLL_BACKOFF.delay(polls))
        iteration = await client.get_iteration(project_id, iteration.id)
        if on_poll is not None:
            on_poll(iteration, time.monotonic() - started)
    return iteration


async def train_after_sync(
    client: TrainingClient, mirror: MirrorConfig, changed: int
) -> dict[str, Any] | None:
    """Start training if the mirror asks for it after a sync and the sync changed `changed`
    images, enough; return what happened (None: not asked or not enough). The caller calls only
    after a real run that finished with everything done. A refusal is reported in the result,
    never raised: the sync itself succeeded."""
    threshold = mirror.train_after_sync
    if not threshold or changed < threshold:
        return None
    result: dict[str, Any] = {"changed_images": changed, "threshold": threshold}
    try:
        iteration = await start_training(client, mirror.project_id)
    except NothingToTrainError as exc:
        result.update(started=False, reason=str(exc))
    except TrainingRefusedError as exc:
        result.update(started=False, reason=exc.detail)
    except ApiError as exc:
        result.update(started=False, reason=str(exc))
    else:
        result.update(started=True, iteration_id=str(iteration.id), iteration=iteration.name)
    _log.info("train_after_sync", mirror=mirror.name, **result)
    return result

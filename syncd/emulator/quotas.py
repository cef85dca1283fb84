"""The emulator's account limits and training time: defaults shared by the store and the command
line (a module of its own, so `syncd --help` does not import the store).

Public names: Quotas, DEFAULT_QUOTAS, DEFAULT_TRAINING_SECONDS.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_TRAINING_SECONDS = 2.0


@dataclass(frozen=True)
class Quotas:
    """Per-account limits; the defaults are the S0 tier's (DIGEST section 6)."""

    max_projects: int = 100
    max_images_per_project: int = 100_000
    max_tags_per_project: int = 500
    max_tags_per_image: int = 100
    max_image_bytes: int = 6 * 1024 * 1024
    # «Iterations 20» (S0 and F0, DIGEST section 6).
    max_iterations_per_project: int = 20
    # Custom Vision asks for at least 5 images per tag before it trains a classifier.
    min_images_per_tag: int = 5


DEFAULT_QUOTAS = Quotas()

"""JSON schemas of Azure ML AutoML for images' JSONL lines, one per task.

Public names: AUTOML_SCHEMAS (task -> schema), automl_schema.

Written from Microsoft's page "Data schemas to train computer vision models with automated machine
learning" (v2), whose tables are vendored in docs/spec/automl-images.md; the same schemas are
in docs/spec/automl-images.schema.json (tests/test_export.py keeps the two equal). What the page
says, key by key:
- `image_url`: required string (an `azureml://` datastore path in the page's examples).
- `image_details`: optional dictionary; `format` optional, one of jpg, jpeg, png, jpe, jfif,
  bmp, tif, tiff; `width` and `height` optional, "String or Positive Integer" ("400px" or 400).
- `label`: multi-class, a required string; multi-label, a required list of strings; object
  detection, a required list of boxes, each with `label` (string), `topX`, `topY`, `bottomX`,
  `bottomY` (required floats in [0, 1]) and `isCrowd` (optional, "Bool", written 0 in examples).
The page shows no other keys; the schemas allow none (additionalProperties false) so that a typo
in a writer is caught.
"""

from __future__ import annotations

from typing import Any

_FORMATS = ["jpg", "jpeg", "png", "jpe", "jfif", "bmp", "tif", "tiff"]
_SIDE = {
    "oneOf": [
        {"type": "integer", "minimum": 1},
        {"type": "string", "pattern": "^[1-9][0-9]*(px)?$"},
    ]
}
_FRACTION = {"type": "number", "minimum": 0, "maximum": 1}


def _line(label: dict[str, Any], title: str) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
        "type": "object",
        "required": ["image_url", "label"],
        "additionalProperties": False,
        "properties": {
            "image_url": {"type": "string", "minLength": 1},
            "image_details": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "format": {"enum": _FORMATS},
                    "width": _SIDE,
                    "height": _SIDE,
                },
            },
            "label": label,
        },
    }


AUTOML_SCHEMAS: dict[str, dict[str, Any]] = {
    "multiclass": _line(
        {"type": "string", "minLength": 1}, "AutoML image classification (multi-class) line"
    ),
    "multilabel": _line(
        {"type": "array", "items": {"type": "string", "minLength": 1}},
        "AutoML image classification multi-label line",
    ),
    "detection": _line(
        {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["label", "topX", "topY", "bottomX", "bottomY"],
                "additionalProperties": False,
                "properties": {
                    "label": {"type": "string", "minLength": 1},
                    "topX": _FRACTION,
                    "topY": _FRACTION,
                    "bottomX": _FRACTION,
                    "bottomY": _FRACTION,
                    "isCrowd": {"oneOf": [{"type": "boolean"}, {"enum": [0, 1]}]},
                },
            },
        },
        "AutoML object detection line",
    ),
}


def automl_schema(kind: str) -> dict[str, Any]:
    """The schema of a line for `kind` (multiclass, multilabel or detection)."""
    return AUTOML_SCHEMAS[kind]

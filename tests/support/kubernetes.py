"""Rendered manifests against Kubernetes' own OpenAPI schemas (the kubernetes-validate wheel)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import kubernetes_validate

# A current release (helm-python-sdk renders with its capabilities).
KUBERNETES_VERSION = "1.36"


def validate_strictly(objects: Iterable[dict[str, Any]]) -> tuple[set[str], set[str]]:
    """Validate each object strictly (no unknown field); a failure raises ValidationError.

    Returns (checked kinds, skipped kinds): custom resources (PrometheusRule, ServiceMonitor,
    ScaledObject) have no schema in Kubernetes' OpenAPI and are skipped."""
    checked, skipped = set(), set()
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            skipped.add(obj["kind"])
        else:
            checked.add(obj["kind"])
    return checked, skipped

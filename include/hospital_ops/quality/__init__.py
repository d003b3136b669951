"""Data quality: the nightly Great Expectations gate between the marts build and scoring."""

from hospital_ops.quality.gate import (
    GateResult,
    QualityGateError,
    QualityGateFailed,
    load_checkpoint,
    load_suite,
    run_quality_gate,
)

__all__ = [
    "GateResult",
    "QualityGateError",
    "QualityGateFailed",
    "load_checkpoint",
    "load_suite",
    "run_quality_gate",
]

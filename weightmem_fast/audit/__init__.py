"""The audit (issue 8): one call from generated and training weights to per-model numbers, the noise frontier and a
verdict with confidence intervals::

    from weightmem_fast.audit import ClassifierTask, audit
    task = ClassifierTask(template, test_inputs, test_labels)       # or FieldTask(layout, clouds, test_clouds)
    result = audit(generated, training, task)                       # tensors [N, D] or weightmem_fast.io zoos
    result.verdicts["generated"].near_copies                        # Estimate(value, low, high, level)
    result.save("audit/"); result.report("audit/")                  # JSON, CSV, arrays; the HTML report

Definitions of the verdict's numbers: ``weightmem_fast.audit.verdict``.
"""
from .core import audit, versions
from .result import CLASSIFIER, FIELD, AuditResult, Behaviour, Estimate, Frontier, GroupAudit, Verdict
from .tasks import ClassifierTask, FieldTask

__all__ = ["CLASSIFIER", "FIELD", "AuditResult", "Behaviour", "ClassifierTask", "Estimate", "FieldTask", "Frontier",
           "GroupAudit", "Verdict", "audit", "versions"]

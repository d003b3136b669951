"""The project's own dbt-bouncer check: every model has a key (dbt-bouncer.yml, custom_checks_dir).

dbt-bouncer's check_model_has_unique_test counts uniqueness tests only, but the models with an enforced
contract (the rpt_ models, the dims) declare their key as a `primary_key` constraint, which PostgreSQL
enforces when dbt creates the table: a duplicate fails the build before any test would run. This check
accepts either.
"""

from dbt_bouncer.check_framework.decorator import check, fail
from dbt_bouncer.utils import get_clean_model_name


def _constraint_types(constraints: list | None) -> set[str]:
    types = set()
    for constraint in constraints or []:
        kind = getattr(constraint, "type", None)
        types.add(getattr(kind, "value", str(kind)))
    return types


@check(code="HO001")
def check_model_has_key(model, ctx, *, accepted_uniqueness_tests: list[str] | None = None):
    """Models must have a uniqueness test or an enforced primary key.

    Receives:
        model (ModelNode): The ModelNode object to check.

    Other Parameters:
        accepted_uniqueness_tests (list[str]): generic tests that assert a key (default: unique).
    """
    accepted = set(accepted_uniqueness_tests or ["unique"])
    for test in ctx.tests_by_attached_node.get(model.unique_id, []):
        metadata = getattr(test, "test_metadata", None)
        if metadata is not None and getattr(metadata, "name", None) in accepted:
            return
    contract = getattr(model.config, "contract", None)
    if contract is not None and getattr(contract, "enforced", False):
        if "primary_key" in _constraint_types(model.constraints):
            return
        if any("primary_key" in _constraint_types(column.constraints) for column in (model.columns or {}).values()):
            return
    fail(f"`{get_clean_model_name(model.unique_id)}` has no key: no {sorted(accepted)} test and no enforced "
         "primary_key constraint.")

"""Airflow notifiers of the nightly DAG, built on the Apprise provider's AppriseNotifier: the
channels are the URL list of the `hospital_ops_alerts` connection (see hospital_ops.notify)."""

from __future__ import annotations

import logging
from datetime import date
from typing import TYPE_CHECKING, Any

from airflow.providers.apprise.notifications.apprise import AppriseNotifier

from hospital_ops.notify import ALERTS_CONN_ID, HOSPITAL_TZ, deadline_missed_body, failure_message

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)


def alert_urls() -> list[str]:
    """The Apprise URLs of the `hospital_ops_alerts` connection; [] when it is not defined. Only
    "not found" means not configured: any other error of a secrets backend fails loudly."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    from hospital_ops.notify import urls_from_connection_extra

    try:
        conn = BaseHook.get_connection(ALERTS_CONN_ID)
    except AirflowNotFoundException:
        return []
    return urls_from_connection_extra(conn.extra_dejson)


class NightFailedNotifier(AppriseNotifier):
    """On a failed task: which task, the error (for the quality gate, the failed expectations), the
    log link, sent to the alert channels; nothing when no channel is configured."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(body="", apprise_conn_id=ALERTS_CONN_ID, **kwargs)

    def notify(self, context: Context) -> None:
        from apprise import NotifyType

        if not alert_urls():
            log.warning("task failure not sent: connection %s is not configured", ALERTS_CONN_ID)
            return
        ti = context["ti"]
        logical = context.get("logical_date")
        business: date | str = logical.in_timezone(HOSPITAL_TZ.key).date() if logical else "-"
        message = failure_message(dag_id=ti.dag_id, task_id=ti.task_id, business_date=business,
                                  error=str(context.get("exception") or "see the log"), log_url=ti.log_url)
        self.hook.notify(title=message.title, body=message.body, notify_type=NotifyType.FAILURE)


def deadline_notifier_kwargs() -> dict:
    """kwargs of the AppriseNotifier the DAG's deadline alert runs (in the triggerer) when missed."""
    return {"title": "【未按时发布】hospital_ops_nightly", "body": deadline_missed_body(),
            "apprise_conn_id": ALERTS_CONN_ID}

from apps.core.job_registry import JobKind
from apps.core.platform import ContextaApp, NavEntry, PeriodicTask
from apps.core.roles import ADMIN, AGENT

_JOBS = "apps.support.jobs"
# Live-update topics (apps.core.live): "support.kb.<id>", a knowledge base's documents changed.
LIVE_KB = "support.kb."


class SupportConfig(ContextaApp):
    name = "apps.support"
    label = "support"
    verbose_name = "Support"

    urls = "apps.support.urls"
    url_prefix = "support/"
    api_urls = "apps.support.api_urls"
    api_prefix = "support/"
    nav = (NavEntry("Support", "support:index", roles=(ADMIN, AGENT), order=10),)
    role_permissions = {ADMIN: ("support.*",), AGENT: ("support.*",)}
    live_topics = {LIVE_KB: "support.view_knowledgebase"}
    periodic_tasks = (PeriodicTask("support-sync-documents", "support.sync_due_documents", every=60),)
    job_kinds = (
        JobKind(
            name="support_ingest",
            label="Support: index a knowledge-base document",
            queue="inference",
            params=f"{_JOBS}.IngestParams",
            run=f"{_JOBS}.run_ingest",
            permission="support.add_document",
        ),
        JobKind(
            name="support_intent",
            label="Intent classifier (fine-tune MiniLM on labelled examples, BANKING77 format text,category)",
            queue="training",
            params=f"{_JOBS}.IntentTrainParams",
            run=f"{_JOBS}.run_intent_train",
        ),
    )
    api_enums = {
        "DocumentStatusEnum": "apps.support.models.Document.Status",
        "DocumentFormatEnum": "apps.support.models.Document.Format",
        "DocumentSourceEnum": "apps.support.models.Document.Source",
        "DocumentVisibilityEnum": "apps.support.models.Document.Visibility",
    }

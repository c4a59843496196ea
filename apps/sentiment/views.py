"""Sentiment dashboard: overview, entity pages, alerts, rules with backtest, notifications, source health.

Views parse input, call one service or selector, and render. Pages need the app's view permissions (analysts
and admins have them; agents get 403); acknowledging, resolving and editing rules need change permissions.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from apps.core.access import access
from apps.core.errors import ServiceError
from apps.sentiment import selectors
from apps.sentiment.forms import AlertRuleForm, CsvUploadForm, FeedForm
from apps.sentiment.models import Alert, AlertRule
from apps.sentiment.services import alerts as alert_services
from apps.sentiment.services import feeds, ingest, uploads
from apps.sentiment.services.delivery import SECRET_MASK, channel_label, secrets_added

RANGES = (1, 7, 30, 90)


def _nav(request: HttpRequest, **context: Any) -> dict[str, Any]:
    context["unread"] = selectors.unread_notifications(user=request.user)
    context["open_alerts"] = selectors.alerts(status="open").count()
    context["aggregation_failure"] = selectors.aggregation_failure()
    return context


# --- overview and entities ----------------------------------------------------------------------------
@access("sentiment.view_entity")
@login_required
@permission_required("sentiment.view_entity", raise_exception=True)
def index(request: HttpRequest) -> HttpResponse:
    sort = request.GET.get("sort", "change")
    sort = sort if sort in selectors.SORTS else "change"
    descending = request.GET.get("dir", "asc") == "desc"
    rows = selectors.overview(sort=sort, descending=descending)
    context = _nav(request, rows=rows, sort=sort, descending=descending, sorts=selectors.SORTS)
    return render(request, "sentiment/index.html", context)


@access("sentiment.view_entity")
@login_required
@permission_required("sentiment.view_entity", raise_exception=True)
def entity_detail(request: HttpRequest, ticker: str) -> HttpResponse:
    entity = selectors.entity_by_ticker(ticker)
    if entity is None:
        raise Http404(f"No entity with ticker {ticker!r}.")
    try:
        days = int(request.GET.get("days", 7))
    except ValueError:
        days = 7
    days = days if days in RANGES else 7
    granularity, points = selectors.entity_series(entity=entity, days=days)
    context = _nav(
        request,
        entity=entity,
        days=days,
        ranges=RANGES,
        granularity=granularity,
        points=points,
        items=selectors.latest_items(entity=entity),
        alerts=selectors.alerts(status="open", entity=entity),
    )
    return render(request, "sentiment/entity.html", context)


# --- alerts -------------------------------------------------------------------------------------------
@access("sentiment.view_alert")
@login_required
@permission_required("sentiment.view_alert", raise_exception=True)
def alerts(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", "open")
    status = status if status in selectors.ALERT_FILTERS else "open"
    context = _nav(
        request, alerts=selectors.alerts(status=status)[:200], status=status, filters=selectors.ALERT_FILTERS
    )
    return render(request, "sentiment/alerts.html", context)


@access("sentiment.view_alert")
@login_required
@permission_required("sentiment.view_alert", raise_exception=True)
def alert_detail(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        alert = selectors.alert_detail(pk=pk)
    except Alert.DoesNotExist:
        return HttpResponse("No such alert.", status=404)
    deliveries = [(d, channel_label(d.channel)) for d in alert.deliveries.all()]
    context = _nav(request, alert=alert, items=selectors.alert_items(alert=alert), deliveries=deliveries)
    return render(request, "sentiment/alert_detail.html", context)


def _alert_action(request: HttpRequest, pk: int, action: Any, done: str) -> HttpResponse:
    alert = get_object_or_404(selectors.alerts(status="all"), pk=pk)
    error = ""
    try:
        alert = action(alert=alert, user=request.user)
    except ServiceError as exc:
        error = exc.message
    if getattr(request, "htmx", False):  # the alerts table swaps the row in place
        alert = selectors.alerts(status="all").get(pk=pk)
        return render(request, "sentiment/_alert_row.html", {"alert": alert, "error": error})
    if error:
        messages.error(request, error)
    else:
        messages.success(request, f"Alert #{alert.pk} {done}.")
    back = request.POST.get("next", "")
    safe = url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return redirect(back if back and safe else "sentiment:alerts")


@access("sentiment.change_alert")
@require_POST
@login_required
@permission_required("sentiment.change_alert", raise_exception=True)
def alert_acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    return _alert_action(request, pk, alert_services.alert_acknowledge, "acknowledged")


@access("sentiment.change_alert")
@require_POST
@login_required
@permission_required("sentiment.change_alert", raise_exception=True)
def alert_resolve(request: HttpRequest, pk: int) -> HttpResponse:
    return _alert_action(request, pk, alert_services.alert_resolve, "resolved")


# --- rules --------------------------------------------------------------------------------------------
@access("sentiment.view_alertrule")
@login_required
@permission_required("sentiment.view_alertrule", raise_exception=True)
def rules(request: HttpRequest) -> HttpResponse:
    rows = [(r, [channel_label(c) for c in r.channels]) for r in selectors.rules()]
    return render(request, "sentiment/rules.html", _nav(request, rules=rows))


@access("sentiment.view_alertrule", "sentiment.change_alertrule")
@login_required
@permission_required("sentiment.view_alertrule", raise_exception=True)
def rule_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """The rule editor: "Backtest" shows how often the rule would have fired over 30 days; "Save" saves it."""
    rule = get_object_or_404(AlertRule, pk=pk) if pk is not None else None
    if request.method != "POST":
        form = AlertRuleForm.for_rule(rule) if rule else AlertRuleForm()
        return render(request, "sentiment/rule_edit.html", _nav(request, form=form, rule=rule))
    if not request.user.has_perm("sentiment.change_alertrule" if rule else "sentiment.add_alertrule"):
        return HttpResponse("You may not edit alert rules.", status=403)
    form = AlertRuleForm(request.POST, rule=rule)
    context = _nav(request, form=form, rule=rule)
    if form.is_valid():
        try:
            if request.POST.get("action") == "backtest":
                context["backtest"] = selectors.rule_backtest(**form.backtest_params())
            else:
                _rule_save(request, rule, form.cleaned_data)
                return redirect("sentiment:rules")
        except ServiceError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
    return render(request, "sentiment/rule_edit.html", context, status=400 if form.errors else 200)


def _rule_save(request: HttpRequest, rule: AlertRule | None, data: dict[str, Any]) -> None:
    """Create or update the rule, and say once that new webhook secrets are write-only from now on."""
    before = list(rule.channels) if rule else []
    saved = (
        alert_services.rule_update(rule=rule, **data)
        if rule
        else alert_services.rule_create(user=request.user, **data)
    )
    messages.success(request, f"Rule {saved.name!r} saved.")
    if added := secrets_added(before=before, after=saved.channels):
        messages.info(
            request,
            f"{added} webhook secret(s) stored. Secrets are write-only: the editor shows {SECRET_MASK} "
            "from now on, so keep your copy where your receiver reads it.",
        )


@access("sentiment.delete_alertrule")
@require_POST
@login_required
@permission_required("sentiment.delete_alertrule", raise_exception=True)
def rule_delete(request: HttpRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(AlertRule, pk=pk)
    alert_services.rule_delete(rule=rule)
    messages.info(request, f"Rule {rule.name!r} deleted with its alerts.")
    return redirect("sentiment:rules")


# --- notifications and sources ------------------------------------------------------------------------
@access("sentiment.view_notification")
@login_required
@permission_required("sentiment.view_notification", raise_exception=True)
def notifications(request: HttpRequest) -> HttpResponse:
    context = _nav(request, notifications=selectors.notifications(user=request.user))
    return render(request, "sentiment/notifications.html", context)


@access("sentiment.view_notification")
@require_POST
@login_required
@permission_required("sentiment.view_notification", raise_exception=True)
def notifications_read(request: HttpRequest) -> HttpResponse:
    count = alert_services.notifications_mark_read(user=request.user)  # type: ignore[arg-type]
    messages.info(request, f"{count} notification(s) marked as read.")
    return redirect("sentiment:notifications")


@access("sentiment.view_source", "sentiment.add_item")
@login_required
@permission_required("sentiment.view_source", raise_exception=True)
def sources(request: HttpRequest) -> HttpResponse:
    """Source health, and the CSV upload form (the ingestion service stores the rows)."""
    form = CsvUploadForm()
    if request.method == "POST":
        if not request.user.has_perm("sentiment.add_item"):
            return HttpResponse("You may not upload items.", status=403)
        form = CsvUploadForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                report = uploads.items_upload_file(
                    file=form.cleaned_data["file"],
                    source_name=form.cleaned_data["source"],
                    username=request.user.get_username(),
                    encoding=form.cleaned_data["encoding"],
                )
            except ServiceError as exc:
                form.add_error(exc.field if exc.field in form.fields else "file", exc.message)
            else:
                messages.success(request, _upload_summary(report))
                return redirect("sentiment:sources")
    return _sources_page(request, form=form)


def _sources_page(request: HttpRequest, **forms: Any) -> HttpResponse:
    forms.setdefault("form", CsvUploadForm())
    forms.setdefault("feed_form", FeedForm())
    failed = any(f.errors for f in forms.values())
    context = _nav(request, sources=selectors.sources_list(), **forms)
    return render(request, "sentiment/sources.html", context, status=400 if failed else 200)


@access("sentiment.add_source")
@require_POST
@login_required
@permission_required("sentiment.add_source", raise_exception=True)
def feed_add(request: HttpRequest) -> HttpResponse:
    """Add an RSS/Atom feed; beat polls it from the next minute on."""
    form = FeedForm(request.POST)
    if form.is_valid():
        try:
            source = feeds.feed_source_create(
                name=form.cleaned_data["name"],
                url=form.cleaned_data["url"],
                poll_interval_seconds=form.cleaned_data["poll_minutes"] * 60,
            )
        except ServiceError as exc:
            form.add_error(exc.field if exc.field in form.fields else "url", exc.message)
        else:
            messages.success(request, f"Added the feed {source.name}: it is polled within a minute.")
            return redirect("sentiment:sources")
    return _sources_page(request, feed_form=form)


def _upload_summary(report: ingest.IngestReport) -> str:
    text = f"Uploaded: {report.created} new item(s), {report.duplicates} duplicate(s), {len(report.rejected)} rejected."
    if report.rejected:
        text += " " + "; ".join(f"row {row}: {reason}" for row, reason in report.rejected[:5])
    return text

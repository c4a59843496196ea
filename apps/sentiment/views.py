"""Sentiment dashboard: overview, entity pages, alerts, rules with backtest, notifications, source health.

Views parse input, call one service or selector, and render. Pages need the app's view permissions (analysts
and admins have them; agents get 403); acknowledging, resolving and editing rules need change permissions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from apps.core.access import access
from apps.core.errors import ServiceError
from apps.sentiment import charts, selectors
from apps.sentiment.forms import AlertRuleForm, CsvUploadForm, FeedForm
from apps.sentiment.models import Alert, AlertRule
from apps.sentiment.services import alerts as alert_services
from apps.sentiment.services import feeds, ingest, uploads
from apps.sentiment.services.delivery import SECRET_MASK, channel_label, secrets_added

# The entity page's time ranges; up to HOURLY_UP_TO the chart shows hours, beyond it days.
PERIODS = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
}
DEFAULT_PERIOD = "7d"
OLD_DAYS = {"1": "24h", "7": "7d", "30": "30d", "90": "90d"}  # the links of before: ?days=N
HOURLY_UP_TO = timedelta(days=7)
MAX_CUSTOM_RANGE = timedelta(days=730)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # custom ranges stay between this and a year from now
# A window is at most 7 days (a rule's window_minutes) and ends when its alert last fired, so it starts at
# most this long before the alert first fired.
ALERT_SLACK = timedelta(days=7)


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


@dataclass(frozen=True)
class ChartRange:
    start: datetime
    end: datetime
    key: str  # one of PERIODS, or "custom"
    error: str = ""

    @property
    def granularity(self) -> str:
        return "hour" if self.end - self.start <= HOURLY_UP_TO else "day"


def _parse_local(value: str) -> datetime | None:
    """A datetime-local value (the page's times are UTC)."""
    for fmt in ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(value.strip(), fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def _custom_range(raw_from: str, raw_to: str, now: datetime) -> ChartRange:
    start, end = _parse_local(raw_from), _parse_local(raw_to)
    if start is None or end is None:
        error = "Enter both dates as date and time (for example 2026-01-05 09:00)."
    elif end <= start:
        error = "“To” must be after “From”."
    elif start < EARLIEST or end > now + timedelta(days=366):
        error = f"Pick dates between {EARLIEST:%Y} and a year from now."
    elif end - start > MAX_CUSTOM_RANGE:
        error = f"A custom range is at most {MAX_CUSTOM_RANGE.days} days."
    else:
        return ChartRange(start, end, "custom")
    return ChartRange(now - PERIODS[DEFAULT_PERIOD], now, DEFAULT_PERIOD, error)


def _chart_range(query: Any, now: datetime) -> ChartRange:
    """`?range=6h`, a custom `?from=…&to=…`, or the older `?days=N`; anything else falls back to 7 days."""
    if "from" in query or "to" in query:
        return _custom_range(query.get("from", ""), query.get("to", ""), now)
    key = query.get("range", "")
    if key not in PERIODS:
        key = OLD_DAYS.get(query.get("days", ""), DEFAULT_PERIOD)
    return ChartRange(now - PERIODS[key], now, key)


def _alert_windows(alerts: Any, start: datetime, end: datetime) -> list[charts.AlertWindow]:
    """The window each alert last looked at (detail window_start/window_end; without them, the rule's
    minutes up to when it fired). An alert that keeps firing moves its window on, so an alert fired long
    before `start` may still show; one resolved before `start` cannot."""
    out = []
    for alert in alerts.filter(fired_at__lte=end + ALERT_SLACK).exclude(resolved_at__lt=start)[:200]:
        detail = alert.detail or {}
        try:
            w_start = _aware(datetime.fromisoformat(detail["window_start"]))
            w_end = _aware(datetime.fromisoformat(detail["window_end"]))
        except (KeyError, TypeError, ValueError):
            w_end = alert.fired_at
            w_start = w_end - timedelta(minutes=alert.rule.window_minutes)
        out.append(charts.AlertWindow(w_start, w_end, alert.rule.name))
    return out


def _bucket_start(at: datetime, granularity: str) -> datetime:
    hour = at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return hour.replace(hour=0) if granularity == "day" else hour


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


@access("sentiment.view_entity")
@login_required
@permission_required("sentiment.view_entity", raise_exception=True)
def entity_detail(request: HttpRequest, ticker: str) -> HttpResponse:
    entity = selectors.entity_by_ticker(ticker)
    if entity is None:
        raise Http404(f"No entity with ticker {ticker!r}.")
    chart = _chart_range(request.GET, timezone.now())
    granularity = chart.granularity
    start = _bucket_start(chart.start, granularity)  # the bucket holding `start` is in range too
    rows = selectors.bucket_series(entity=entity, granularity=granularity, start=start, end=chart.end)
    points = [selectors.Point(r.start, r.count, r.mean_score) for r in rows]
    windows = _alert_windows(selectors.alerts(status="all", entity=entity), start, chart.end)
    figure = charts.entity_figure(points, windows, start=start, end=chart.end, granularity=granularity)
    context = _nav(
        request,
        entity=entity,
        chart=chart,
        periods=list(PERIODS),
        granularity=granularity,
        points=points,
        figure=figure if points else None,
        custom_from=request.GET.get("from", f"{chart.start:%Y-%m-%dT%H:%M}"),
        custom_to=request.GET.get("to", f"{chart.end:%Y-%m-%dT%H:%M}"),
        items=selectors.latest_items(entity=entity),
        alerts=selectors.alerts(status="open", entity=entity),
    )
    # A bad custom range is a 200: the error beside the form, and the default 7 days drawn meanwhile.
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

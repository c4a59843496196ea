// Live regions (apps/core/live.py). An element with data-live="topic another" and htmx attributes
// (hx-get, hx-trigger="live", usually hx-select and hx-swap="outerHTML") fetches itself again when one of
// its topics changes. One EventSource per page carries every topic; bursts are merged into one fetch per
// region, and after a lost connection every region is fetched once, since events may have been missed.
(function () {
  "use strict";
  var DELAY_MS = 300;

  function regions() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-live]"));
  }

  function topicsOf(el) {
    return (el.getAttribute("data-live") || "").split(/\s+/).filter(Boolean);
  }

  function refresh(el) {
    if (el._liveTimer) return; // a fetch is already due: this change will be in it
    el._liveTimer = window.setTimeout(function () {
      el._liveTimer = null;
      if (document.body.contains(el) && window.htmx) window.htmx.trigger(el, "live");
    }, DELAY_MS);
  }

  function start() {
    var topics = {};
    regions().forEach(function (el) {
      topicsOf(el).forEach(function (t) { topics[t] = true; });
    });
    var names = Object.keys(topics);
    if (!names.length || !window.EventSource) return;
    var url = "/live/?" + names.map(function (t) { return "topic=" + encodeURIComponent(t); }).join("&");
    var source = new EventSource(url);
    var lost = false;
    document.documentElement.setAttribute("data-live-state", "connecting");
    source.addEventListener("open", function () {
      document.documentElement.setAttribute("data-live-state", "open");
      if (lost) regions().forEach(refresh);
      lost = false;
    });
    source.addEventListener("error", function () {
      lost = true;
      document.documentElement.setAttribute("data-live-state", "reconnecting");
    });
    source.addEventListener("message", function (event) {
      var topic;
      try { topic = JSON.parse(event.data).topic; } catch (e) { return; }
      regions().forEach(function (el) {
        if (topicsOf(el).indexOf(topic) !== -1) refresh(el);
      });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

// Behaviour that would otherwise be inline handlers, which the Content-Security-Policy refuses.
// <select data-autosubmit> submits its form on change; <form data-confirm="..."> asks first.
document.addEventListener("change", (event) => {
  const field = event.target.closest("[data-autosubmit]");
  if (field && field.form) field.form.submit();
});
document.addEventListener("submit", (event) => {
  const question = event.target.dataset ? event.target.dataset.confirm : undefined;
  if (question && !window.confirm(question)) event.preventDefault();
});
// htmx leaves a 400 answer unswapped; a swap target marked data-swap-invalid gets it like a 200, since there
// a 400 is the area again with its errors (a prompt preview that cannot render, a field that is not valid).
document.addEventListener("htmx:beforeSwap", (event) => {
  const target = event.target;
  if (event.detail.xhr.status === 400 && target.closest && target.closest("[data-swap-invalid]")) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});
// <button data-nojs>: only needed without JavaScript (the job form's "Show parameters": htmx swaps the
// fields in when the kind changes), so hidden once htmx runs.
document.addEventListener("DOMContentLoaded", () => {
  if (window.htmx) document.documentElement.classList.add("htmx-on");
});
// A table or card that scrolls sideways (narrow screens) must be reachable from the keyboard.
function markScrollable(root) {
  root.querySelectorAll("table, .card, pre").forEach((el) => {
    if (el.scrollWidth > el.clientWidth + 1 && !el.hasAttribute("tabindex")) el.setAttribute("tabindex", "0");
  });
}
document.addEventListener("DOMContentLoaded", () => markScrollable(document));
document.addEventListener("htmx:afterSwap", (event) => markScrollable(event.target));
window.addEventListener("resize", () => markScrollable(document));
// <time data-local datetime="...Z"> (the `when` tag, apps/core/templatetags/ui.py): shown in the reader's own
// zone, named ("2026-12-02 20:51 EET"); the server's text (its TIME_ZONE) stays if Intl cannot do it.
function localizeTimes(root) {
  if (!root || !root.querySelectorAll || !window.Intl || !Intl.DateTimeFormat) return;
  root.querySelectorAll("time[data-local][datetime]").forEach((el) => {
    try {
      const moment = new Date(el.getAttribute("datetime"));
      if (isNaN(moment.getTime())) return;
      const options = { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
        hourCycle: "h23", timeZoneName: "short" };
      if (el.dataset.local === "seconds") options.second = "2-digit";
      const parts = {};
      new Intl.DateTimeFormat("en-GB", options).formatToParts(moment).forEach((p) => { parts[p.type] = p.value; });
      if (!parts.year || !parts.timeZoneName) return;
      let text = `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}`;
      if (options.second) text += `:${parts.second}`;
      el.textContent = `${text} ${parts.timeZoneName}`;
    } catch (error) {
      // keep the server's text
    }
  });
}
document.addEventListener("DOMContentLoaded", () => localizeTimes(document));
document.addEventListener("htmx:load", (event) => localizeTimes(event.target));
// A region htmx is fetching says so to assistive technology too (app.css dims it).
document.addEventListener("htmx:beforeRequest", (event) => event.detail.elt.setAttribute("aria-busy", "true"));
document.addEventListener("htmx:afterRequest", (event) => event.detail.elt.removeAttribute("aria-busy"));

// riskctl moderator UI: keyboard shortcuts, SLA countdowns, select-all. No inline script
// anywhere (the CSP forbids it); everything the pages do in the browser is in this file.
(function () {
  "use strict";

  // A key press clicks the element that declares it (data-key="c", "1", "2", "3", "n", …),
  // so a shortcut can only do what a visible, enabled button or link on the page does.
  function typing(el) {
    if (!el) return false;
    var tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
    if (e.key === "?") {
      var help = document.getElementById("shortcut-help");
      if (help) help.hidden = !help.hidden;
      return;
    }
    var target = document.querySelector('[data-key="' + CSS.escape(e.key) + '"]');
    if (!target || target.disabled || target.closest("[hidden]")) return;
    e.preventDefault();
    target.click();
  });

  // SLA countdowns refresh each 30 s from the datetime attribute the server rendered.
  function fmt(ms) {
    var late = ms < 0, m = Math.floor(Math.abs(ms) / 60000), h = Math.floor(m / 60);
    var span = h >= 48 ? Math.floor(h / 24) + "d " + (h % 24) + "h"
                       : h + "h " + String(m % 60).padStart(2, "0") + "m";
    return late ? span + " late" : "in " + span;
  }
  function tick() {
    document.querySelectorAll("time.countdown[datetime]").forEach(function (t) {
      var due = Date.parse(t.getAttribute("datetime"));
      if (!isNaN(due)) {
        var left = due - Date.now();
        t.textContent = fmt(left);
        t.classList.toggle("late", left < 0);
      }
    });
  }
  setInterval(tick, 30000);

  // Bulk selection: the header checkbox selects every row of the table.
  document.addEventListener("change", function (e) {
    if (e.target.classList && e.target.classList.contains("select-all")) {
      var table = e.target.closest("table");
      table.querySelectorAll('input[name="case_id"]').forEach(function (box) {
        box.checked = e.target.checked;
      });
    }
  });

  // htmx reports a refused request (403, 409, …) in a status line rather than silently.
  document.addEventListener("htmx:responseError", function (e) {
    var box = document.getElementById("action-status");
    if (box) {
      var xhr = e.detail.xhr;
      box.textContent = "Refused (" + xhr.status + "): " + (xhr.status === 409
        ? "the case changed meanwhile; reload to see its current state."
        : xhr.status === 403 ? "your role may not do this." : "the request failed.");
      box.hidden = false;
    }
  });
})();

// Keeps a backfill's page current while it runs: its figures every two seconds, read from
// the page's progress URL; the page reloads once the status changes (its buttons change too).
(function () {
  "use strict";
  var root = document.querySelector("[data-progress-url]");
  if (!root) {
    return;
  }
  var shown = root.getAttribute("data-status");
  var url = root.getAttribute("data-progress-url");

  function text(value) {
    return value === null || value === undefined ? "?" : Number(value).toLocaleString("en-US");
  }

  function show(body) {
    if (body.status !== shown) {
      window.location.reload();
      return false;
    }
    root.querySelector("[data-field=message]").textContent = body.message || "–";
    Object.keys(body.progress).forEach(function (crm) {
      var figures = body.progress[crm];
      ["pulled", "total", "kept", "written", "failed"].forEach(function (key) {
        var cell = root.querySelector('[data-crm="' + crm + '"][data-field="' + key + '"]');
        if (cell) {
          cell.textContent = text(figures[key]);
        }
      });
      var bar = root.querySelector('progress[data-crm="' + crm + '"]');
      if (bar && figures.total) {
        bar.max = figures.total;
        bar.value = figures.pulled;
      }
    });
    return true;
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (answer) { return answer.ok ? answer.json() : null; })
      .then(function (body) {
        if (body === null || show(body)) {
          window.setTimeout(poll, 2000);
        }
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }

  window.setTimeout(poll, 2000);
})();

/* qruntime console: live regions refreshed from Server-Sent Events. No dependencies, no build step.
 *
 * An element with data-live-events="URL" and data-live-refresh="URL" listens to the event stream at
 * the first URL; after each event (debounced) it fetches the second URL, a server-rendered fragment,
 * and replaces its own content with it. Forms with data-confirm ask before they submit. */
(function () {
  "use strict";

  function refresher(region) {
    var url = region.getAttribute("data-live-refresh");
    var pending = null;
    var busy = false;
    var again = false;
    function load() {
      if (busy) { again = true; return; }
      busy = true;
      fetch(url, { credentials: "same-origin", headers: { "X-Console-Fragment": "1" } })
        .then(function (response) {
          if (response.status === 401) { window.location.assign("/console/login"); return null; }
          return response.ok ? response.text() : null;
        })
        .then(function (html) {
          if (html !== null) {
            region.innerHTML = html;
            region.setAttribute("data-refreshed", String(Date.now()));
            region.dispatchEvent(new CustomEvent("console:refreshed", { bubbles: true }));
          }
        })
        .catch(function () { /* the next event retries */ })
        .finally(function () {
          busy = false;
          if (again) { again = false; schedule(); }
        });
    }
    function schedule() {
      if (pending !== null) { clearTimeout(pending); }
      pending = setTimeout(function () { pending = null; load(); }, 150);
    }
    return schedule;
  }

  function connect(region) {
    if (!window.EventSource) { return; }
    var refresh = refresher(region);
    var source = new EventSource(region.getAttribute("data-live-events"));
    var until = region.getAttribute("data-live-until");  /* "job", "session" or "sequence": stop once final */
    var onEvent = function (event) {
      refresh();
      var data = {};
      try { data = JSON.parse(event.data); } catch (ignored) { return; }
      var jobDone = until === "job" && data.type === "job.state_changed" &&
        ["done", "error", "cancelled"].indexOf(data.state) >= 0;
      var sessionDone = until === "session" && data.type === "session.state_changed" && data.state === "closed";
      var sequenceDone = until === "sequence" && data.type === "sequence.state_changed" &&
        ["finished", "interrupted", "crashed"].indexOf(data.state) >= 0;
      if (jobDone || sessionDone || sequenceDone) { source.close(); region.setAttribute("data-live", "final"); }
    };
    source.onmessage = onEvent;
    ["job.state_changed", "job.progress", "session.state_changed", "sequence.state_changed"].forEach(function (name) {
      source.addEventListener(name, onEvent);
    });
    source.onopen = function () { region.setAttribute("data-live", "connected"); };
    source.onerror = function () { region.setAttribute("data-live", "reconnecting"); };
    window.addEventListener("pagehide", function () { source.close(); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-live-events]"), connect);
    document.addEventListener("submit", function (event) {
      var form = event.target;
      var question = form.getAttribute && form.getAttribute("data-confirm");
      if (question && !window.confirm(question)) { event.preventDefault(); }
    });
  });
})();

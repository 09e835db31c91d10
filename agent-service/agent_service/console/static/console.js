/* Parley console: live updates, notifications, drafts and keyboard shortcuts.
 *
 * No inline script anywhere (the Content-Security-Policy forbids it): this file is the page's
 * only code besides htmx and its SSE extension. It is loaded after htmx and before the SSE
 * extension, so that the extension opens its EventSource through createEventSource below.
 *
 * Live updates: the server sends "contact" events (JSON: contact_id, kind, needs_human, label).
 * Every element with data-live-src is a live region: on an event it is reloaded from its URL
 * (htmx, outerHTML), at most once per REFRESH_MS and always once more after the last event
 * (leading and trailing). A region with data-live-contact reloads only for its contact's events
 * (and "resync"). The thread keeps the older messages already on screen (?from=<first id>).
 */
(function () {
  "use strict";

  var REFRESH_MS = 400;
  var lastEventId = null;
  var opened = false;
  var baseTitle = document.title;

  /* ------------------------------------------------------------ the event stream */
  htmx.createEventSource = function (url) {
    // A new connection (after the old one failed for good) still catches up from the last event seen.
    var full = lastEventId ? url + (url.indexOf("?") < 0 ? "?" : "&") + "last_event_id=" + encodeURIComponent(lastEventId) : url;
    return new EventSource(full, { withCredentials: true });
  };

  document.addEventListener("htmx:sseOpen", function (evt) {
    var source = evt.detail.source;
    source.addEventListener("contact", onEvent);
    if (opened) { refreshAll(); }  // a reconnect: whatever was missed is in the database
    opened = true;
  });

  document.addEventListener("htmx:sseError", function () {
    // The stream failed: is the session still valid? If not, go and sign in (the draft is kept).
    fetch("/console/whoami", { headers: { "HX-Request": "true" }, credentials: "same-origin" })
      .then(function (response) {
        var target = response.headers.get("HX-Redirect");
        if (response.status === 401 && target) { saveDraft(); window.location.href = target; }
      })
      .catch(function () { /* the server is away: the extension reconnects */ });
  });

  function onEvent(message) {
    if (message.lastEventId) { lastEventId = message.lastEventId; }
    var data;
    try { data = JSON.parse(message.data); } catch (e) { return; }
    document.dispatchEvent(new CustomEvent("parley:live", { detail: data }));
    if (data.kind === "handoff") { notifyHandoff(data); }
    var regions = document.querySelectorAll("[data-live-src]");
    for (var i = 0; i < regions.length; i++) {
      var contact = regions[i].getAttribute("data-live-contact");
      if (!contact || data.kind === "resync" || String(data.contact_id) === contact) {
        schedule(regions[i].id);
      }
    }
  }

  function refreshAll() {
    var regions = document.querySelectorAll("[data-live-src]");
    for (var i = 0; i < regions.length; i++) { schedule(regions[i].id); }
  }

  /* ------------------------------------------------------------ throttled reloads */
  var state = {};  // region id -> {busy, again, last}

  function schedule(id) {
    if (!id) { return; }
    var s = state[id] || (state[id] = { busy: false, again: false, last: 0 });
    if (s.busy) { s.again = true; return; }
    var wait = Math.max(0, s.last + REFRESH_MS - Date.now());
    s.busy = true;
    window.setTimeout(function () { reload(id, s); }, wait);
  }

  function reload(id, s) {
    var el = document.getElementById(id);
    if (!el) { s.busy = false; return; }
    var url = el.getAttribute("data-live-src");
    if (id === "thread") { url = threadUrl(el, url); }
    var atBottom = id === "thread" && composerInView();
    s.last = Date.now();
    var done = false;
    function finish() {
      if (done) { return; }
      done = true;
      s.busy = false;
      if (s.again) { s.again = false; schedule(id); }
    }
    // Each region is the source of its own request: htmx queues requests per element, and
    // regions sharing one source would drop each other's reloads.
    htmx.ajax("GET", url, { source: el, target: el, swap: "outerHTML" }).then(function () {
      if (atBottom) { showComposer(); }
      if (id === "needs-badge") { updateTitle(); }
    }, function () {}).finally(finish);
    window.setTimeout(finish, 10000);  // a reload that never settles (its region replaced meanwhile)
  }

  function threadUrl(el, url) {
    // Keep every message on screen, the older pages loaded by hand included.
    var first = null;
    var items = el.querySelectorAll(".entry[id^='m-']");
    for (var i = 0; i < items.length; i++) {
      var n = parseInt(items[i].id.slice(2), 10);
      if (first === null || n < first) { first = n; }
    }
    var base = url.split("?")[0];
    return first === null ? base : base + "?from=" + first;
  }

  function composerInView() {
    var form = document.getElementById("reply-form");
    if (!form) { return false; }
    var box = form.getBoundingClientRect();
    return box.top < window.innerHeight && box.bottom > 0;
  }

  function showComposer() {
    // The latest message sits just above the composer (on a phone the contact panel follows it).
    var form = document.getElementById("reply-form");
    if (form) { form.scrollIntoView({ block: "end" }); }
  }

  /* ------------------------------------------------------------ tab title and notifications */
  function updateTitle() {
    var badge = document.getElementById("needs-badge");
    var count = badge ? parseInt(badge.getAttribute("data-count") || "0", 10) : 0;
    document.title = (count > 0 ? "(" + count + ") " : "") + baseTitle;
  }

  function plain(text) {
    // Notifications show text, never markup; drop bidirectional controls that could disguise it.
    return String(text || "").replace(/[\u202a-\u202e\u2066-\u2069\u200e\u200f]/g, "").slice(0, 120);
  }

  function notifyHandoff(data) {
    if (!("Notification" in window) || Notification.permission !== "granted") { return; }
    var note = new Notification("A conversation needs a human", {
      body: plain(data.label) || "A prospect is waiting for a manager",
      tag: "parley-handoff-" + data.contact_id
    });
    note.onclick = function () { window.focus(); window.location.href = "/console/c/" + data.contact_id; };
  }

  function setUpNotifications() {
    var button = document.getElementById("notify-button");
    if (!button || !("Notification" in window) || Notification.permission !== "default") { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      Notification.requestPermission().then(function () { button.hidden = true; });
    });
  }

  /* ------------------------------------------------------------ the reply being typed */
  function composer() { return document.querySelector("textarea[data-draft-key]"); }

  function saveDraft() {
    var box = composer();
    if (!box) { return; }
    try {
      if (box.value) { sessionStorage.setItem(box.getAttribute("data-draft-key"), box.value); }
      else { sessionStorage.removeItem(box.getAttribute("data-draft-key")); }
    } catch (e) { /* storage full or off */ }
  }

  function restoreDraft() {
    var box = composer();
    if (!box || box.value) { return; }
    try {
      var kept = sessionStorage.getItem(box.getAttribute("data-draft-key"));
      if (kept) { box.value = kept; }
    } catch (e) { /* storage off */ }
  }

  document.addEventListener("input", function (evt) {
    if (evt.target && evt.target.matches && evt.target.matches("textarea[data-draft-key]")) { saveDraft(); }
  });

  document.addEventListener("parley:sent", function () {
    var box = composer();
    if (box) { box.value = ""; saveDraft(); box.focus(); }
  });

  document.addEventListener("htmx:beforeRequest", function (evt) {
    // Sending: keep what is being sent until the server took it (a sign-in may come first).
    var form = evt.detail && evt.detail.elt && evt.detail.elt.closest && evt.detail.elt.closest("form");
    if (form && form.querySelector("textarea[data-draft-key]")) { saveDraft(); }
  });

  /* ------------------------------------------------------------ clicks and keys */
  document.addEventListener("click", function (evt) {
    var use = evt.target.closest && evt.target.closest("[data-use-suggestion]");
    if (use) {
      var box = composer();
      if (box) { box.value = use.getAttribute("data-use-suggestion"); saveDraft(); box.focus(); }
    }
  });

  document.addEventListener("change", function (evt) {
    if (evt.target.matches && evt.target.matches("select[data-autosubmit]") && evt.target.form) {
      evt.target.form.requestSubmit();
    }
  });

  document.addEventListener("keydown", function (evt) {
    var target = evt.target;
    var typing = target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT" || target.isContentEditable);
    if (evt.key === "Enter" && (evt.ctrlKey || evt.metaKey) && target.matches && target.matches("textarea[data-draft-key]")) {
      evt.preventDefault();
      if (target.form) { target.form.requestSubmit(); }
      return;
    }
    if (typing || evt.ctrlKey || evt.metaKey || evt.altKey) { return; }
    if (evt.key === "/") {
      var search = document.getElementById("q");
      if (search) { evt.preventDefault(); search.focus(); search.select(); }
    } else if (evt.key === "j" || evt.key === "k") {
      var links = Array.prototype.slice.call(document.querySelectorAll(".row-link"));
      if (!links.length) { return; }
      var at = links.indexOf(document.activeElement);
      var next = evt.key === "j" ? Math.min(links.length - 1, at + 1) : Math.max(0, at - 1);
      links[at < 0 ? 0 : next].focus();
      evt.preventDefault();
    } else if (evt.key === "r") {
      var box = composer();
      if (box) { evt.preventDefault(); box.focus(); }
    }
  });

  restoreDraft();  // deferred: the page is parsed, and htmx has not made any request yet
  document.addEventListener("DOMContentLoaded", function () {
    updateTitle();
    setUpNotifications();
    if (document.body.getAttribute("data-page") === "conversation") { showComposer(); }
  });
})();

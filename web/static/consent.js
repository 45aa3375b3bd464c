/*! consentgate consent banner. Embed with one tag:
 *   <script src="https://YOUR-GATEWAY/consent.js" data-write-key="wk_…" defer></script>
 * Asks for the source's purposes (GDPR: nothing pre-ticked; CCPA: a "Do not sell or share"
 * link), honours Global Privacy Control, records the choice through the gateway for the
 * visitor's anonymousId, and hands it to analytics.js as Segment's categoryPreferences, so
 * that every event carries it. Once answered it does not show again; a "Privacy choices"
 * button (or window.consentgate.open(), or any element with data-consentgate-open) reopens
 * it. It loads nothing but its own stylesheet, from the gateway. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.consentgate) return;
  var writeKey = script.getAttribute("data-write-key");
  var gateway = new URL(script.src, location.href).origin;
  var storageKey = "consentgate:" + writeKey;
  var gpc = navigator.globalPrivacyControl === true;
  var config = null;
  var choice = load();
  var listeners = [];
  var banner = null;
  var reopen = null;

  function load() {
    try {
      return JSON.parse(localStorage.getItem(storageKey)) || null;
    } catch (e) {
      return null;
    }
  }

  function save(value) {
    try {
      localStorage.setItem(storageKey, JSON.stringify(value));
    } catch (e) {
      /* storage refused (private mode): the choice holds for this page only */
    }
  }

  function auth() {
    return { Authorization: "Basic " + btoa(writeKey + ":") };
  }

  // analytics.js keeps the anonymous id as JSON in localStorage; share it, or make it
  function anonymousId() {
    var a = window.analytics;
    try {
      if (a && typeof a.user === "function") return a.user().anonymousId();
    } catch (e) {
      /* the snippet's stub has no user() yet */
    }
    try {
      var kept = JSON.parse(localStorage.getItem("ajs_anonymous_id"));
      if (kept) return String(kept);
    } catch (e) {
      /* not JSON: make a new one */
    }
    var made = crypto.randomUUID();
    try {
      localStorage.setItem("ajs_anonymous_id", JSON.stringify(made));
    } catch (e) {
      /* storage refused */
    }
    return made;
  }

  // GPC always refuses selling, sharing and targeted advertising
  function preferences() {
    if (!choice) return null;
    var prefs = {};
    for (var key in choice.purposes) prefs[key] = choice.purposes[key];
    if (gpc && config) config.do_not_sell.forEach(function (p) { prefs[p] = false; });
    else if (gpc) ["sale_sharing", "marketing"].forEach(function (p) { prefs[p] = false; });
    return prefs;
  }

  // Segment's consent shape, on every event analytics.js sends from now on: a source
  // middleware, added to window.analytics by itself, or by the app to its own instance
  function middleware(ctx) {
    var prefs = preferences();
    if (prefs) {
      var context = (ctx.payload.obj.context = ctx.payload.obj.context || {});
      var consent = (context.consent = context.consent || {});
      consent.categoryPreferences = prefs;
      if (gpc) consent.gpc = true;
    }
    ctx.next(ctx.payload);
  }

  var handedOff = false;
  function handOff() {
    var a = window.analytics;
    if (!handedOff && a && typeof a.addSourceMiddleware === "function") {
      handedOff = true;
      a.addSourceMiddleware(middleware);
    }
    var prefs = preferences();
    listeners.forEach(function (fn) { fn(prefs); });
    document.dispatchEvent(new CustomEvent("consentgate:choice", { detail: prefs }));
  }

  function record(purposes) {
    choice = { purposes: purposes, at: new Date().toISOString(), recorded: false };
    save(choice);
    handOff();
    var body = {
      anonymousId: anonymousId(),
      purposes: purposes,
      policy_version: script.getAttribute("data-policy-version") || config.policy_version,
    };
    return fetch(gateway + "/v1/consent/banner", {
      method: "POST",
      headers: Object.assign({ "Content-Type": "application/json" }, auth()),
      body: JSON.stringify(body),
      credentials: "omit",
    }).then(function (response) {
      if (!response.ok) throw new Error("consentgate: the gateway answered " + response.status);
      return response.json();
    }).then(function (signed) {
      choice.recorded = true;
      choice.receipt = signed.receipt.receipt_id;
      save(choice);
      return signed;
    });
  }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var name in attrs || {}) node.setAttribute(name, attrs[name]);
    if (text) node.textContent = text;
    return node;
  }

  function button(text, onClick, kind) {
    var node = el("button", { type: "button", class: "cg-button" + (kind ? " cg-" + kind : "") }, text);
    node.addEventListener("click", onClick);
    return node;
  }

  function close() {
    if (banner) banner.remove();
    banner = null;
    showReopen();
  }

  function decide(purposes) {
    close();
    record(purposes).catch(warn);
  }

  function asked() {
    return config.purposes.filter(function (p) { return p.asks_consent; });
  }

  function all(granted) {
    var purposes = {};
    asked().forEach(function (p) {
      purposes[p.key] = granted && !(gpc && config.do_not_sell.indexOf(p.key) >= 0);
    });
    return purposes;
  }

  function open(focus) {
    if (banner) return;
    if (!config) {
      loadConfig().then(function () { open(focus); }, warn);
      return;
    }
    var ccpa = config.jurisdiction === "ccpa";
    var current = preferences() || {};
    banner = el("section", { class: "cg-banner", role: "dialog", "aria-modal": "false", "aria-labelledby": "cg-title", "aria-describedby": "cg-about" });
    banner.appendChild(el("h2", { id: "cg-title", class: "cg-title" }, "Your privacy choices"));
    banner.appendChild(el("p", { id: "cg-about" }, ccpa
      ? config.source + " uses your data as described below. You can opt out of the sale or sharing of your personal information at any time."
      : config.source + " asks for your consent to use your data for the purposes below. Nothing is used until you choose."));
    if (gpc) banner.appendChild(el("p", { class: "cg-gpc" }, "Your browser sends a Global Privacy Control signal: selling, sharing and targeted advertising stay off."));
    var list = el("div", { class: "cg-purposes" });
    var boxes = {};
    config.purposes.forEach(function (p) {
      var row = el("div", { class: "cg-purpose" });
      var id = "cg-purpose-" + p.key;
      var locked = !p.asks_consent || (gpc && config.do_not_sell.indexOf(p.key) >= 0);
      var box = el("input", { type: "checkbox", id: id, "aria-describedby": id + "-about" });
      // GDPR: nothing pre-ticked; CCPA: allowed until refused
      box.checked = !p.asks_consent || (p.key in current ? current[p.key] : ccpa && !locked);
      if (locked) box.disabled = true;
      if (p.asks_consent) boxes[p.key] = box;
      row.appendChild(box);
      row.appendChild(el("label", { for: id }, p.name + (p.asks_consent ? "" : " (always on)")));
      row.appendChild(el("p", { id: id + "-about", class: "cg-about" }, p.description));
      list.appendChild(row);
    });
    banner.appendChild(list);
    var actions = el("div", { class: "cg-actions" });
    actions.appendChild(button("Reject all", function () { decide(all(false)); }));
    actions.appendChild(button("Accept all", function () { decide(all(true)); }));
    actions.appendChild(button("Save choices", function () {
      var purposes = {};
      for (var key in boxes) purposes[key] = boxes[key].checked && !boxes[key].disabled;
      decide(purposes);
    }, "primary"));
    banner.appendChild(actions);
    if (ccpa && config.do_not_sell.length) {
      var link = el("a", { href: "#", class: "cg-dns" }, "Do not sell or share my personal information");
      link.addEventListener("click", function (event) {
        event.preventDefault();
        var purposes = Object.assign(all(true), preferences() || {});
        config.do_not_sell.forEach(function (p) { purposes[p] = false; });
        decide(purposes);
      });
      banner.appendChild(el("p")).appendChild(link);
    }
    if (reopen) reopen.hidden = true;
    document.body.appendChild(banner);
    // reopened by the visitor: focus moves into it; shown at load: the page keeps focus
    if (focus !== false) banner.querySelector("input:not([disabled]), button").focus();
  }

  function showReopen() {
    if (script.getAttribute("data-reopen") === "none") return;
    if (!reopen) {
      reopen = button("Privacy choices", function () { open(true); }, "reopen");
      document.body.appendChild(reopen);
    }
    reopen.hidden = false;
  }

  function warn(error) {
    console.warn(error.message);
  }

  var loading = null;
  function loadConfig() {
    loading = loading || fetch(gateway + "/v1/banner", { headers: auth(), credentials: "omit" })
      .then(function (response) {
        if (!response.ok) throw new Error("consentgate: the gateway answered " + response.status);
        return response.json();
      })
      .then(function (loaded) { config = loaded; });
    loading.catch(function () { loading = null; }); // a later open() may try again
    return loading;
  }

  function start() {
    document.head.appendChild(el("link", { rel: "stylesheet", href: gateway + "/pages/banner.css" }));
    document.addEventListener("click", function (event) {
      var target = event.target.closest && event.target.closest("[data-consentgate-open]");
      if (target) {
        event.preventDefault();
        open(true);
      }
    });
    if (choice && choice.recorded) {
      showReopen(); // answered and recorded: nothing more loads until the visitor reopens it
      return;
    }
    loadConfig().then(function () {
      if (!choice) return open(false);
      showReopen();
      return record(choice.purposes); // answered while the gateway could not record it
    }).catch(warn);
  }

  window.consentgate = {
    open: function () { open(true); },
    middleware: middleware,
    preferences: preferences,
    onChoice: function (fn) { listeners.push(fn); },
  };
  if (choice) handOff(); // events sent before the config arrives carry the choice too
  window.addEventListener("load", function () { if (choice) handOff(); });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

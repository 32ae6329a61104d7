// K12 Panel admin page: plain JavaScript over the REST API (/v1). No build step, no CDN.
// A person signs in with Google or Microsoft (auth's /signin routes); the session is an
// HttpOnly cookie this script never sees. Every change carries the session's X-CSRF-Token.
// Everything shown is built with textContent, never innerHTML, so names from the directory
// cannot inject markup.
"use strict";

// GET /v1/session: {tenant_id, tenant_name, email, role, csrf_token, ...}; null signed out.
let session = null;
const isAdmin = () => session !== null && session.role === "admin";
const $ = (id) => document.getElementById(id);
const PROVIDERS = {
  google: {label: "Google Workspace", path: "google",
           authorize: "Authorize Panel to Perform Google Workspace Sync",
           readonly: "Panel asks Google only for read-only access: it can view users, " +
                     "organizational units and ChromeOS devices, and cannot change anything " +
                     "in your Google Workspace. No password is stored."},
  azure: {label: "Microsoft Entra ID", path: "microsoft",
          authorize: "Authorize Panel to Perform Microsoft Entra ID Sync",
          readonly: "Panel asks Microsoft only for read-only directory access (User.Read.All): " +
                    "it can view users and cannot change anything in your tenant. " +
                    "No password is stored."},
};
const STATUS_WORDS = {
  never: "Never connected.",
  pending: "Authorization started but not finished.",
  connected: "Connected.",
  revoked: "Revoked: access was withdrawn at the provider. No further syncs run and nothing " +
           "already imported was deleted. Authorize again to resume.",
  deauthorized: "De-authorized from Panel. Authorize again to resume syncing.",
  scope_missing: "Connected without every read-only permission Panel needs. Authorize again " +
                 "and leave every permission ticked.",
  permission_missing: "Connected, but the provider refuses part of what Panel reads (see below). " +
                      "The rest still syncs; nothing of the refused kind is updated or removed.",
};
const LIFECYCLE = {in_storage: "In storage", deployed: "Deployed", in_repair: "In repair",
                   lost_stolen: "Lost / stolen", retired: "Retired"};

// ---------------------------------------------------------------- plumbing

class ApiError extends Error {
  constructor(status, code, message, items) {
    super(message);
    this.status = status;
    this.code = code;
    this.items = items || null; // a bulk request's per-line results
  }
}

async function api(method, path, body) {
  const headers = {};
  const init = {method, headers, credentials: "same-origin"};
  if (method !== "GET" && session) headers["X-CSRF-Token"] = session.csrf_token;
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "network", "Panel cannot be reached. Check your connection and try again.");
  }
  let data = null;
  try {
    data = await res.json();
  } catch (e) {
    data = null;
  }
  if (!res.ok) {
    const err = data && data.error ? data.error : {};
    if (res.status === 401) {
      showSignIn(data && data.signin, "Your session has ended. Sign in again.");
    }
    throw new ApiError(res.status, err.code || "http_" + res.status, explain(res.status, err), err.items);
  }
  return data;
}

function explain(status, err) {
  const base = err.message || "The request failed.";
  const words = {
    403: "Not allowed: ",
    409: "Not possible right now: ",
    413: "Too much data was sent: ",
    502: "A Panel service is unavailable: ",
    503: "Panel is busy or its database is unavailable: ",
  };
  let msg = (words[status] || "") + base;
  if (err.items) {
    const bad = err.items.filter((i) => i.status !== 200).map((i) => `item ${i.index + 1}: ${i.message}`);
    msg += " (" + bad.join("; ") + ")";
  }
  return msg;
}

function showError(e) {
  const box = $("alert");
  box.textContent = e instanceof ApiError || e instanceof Error ? e.message : String(e);
  box.hidden = false;
}

function clearError() {
  $("alert").hidden = true;
  $("alert").textContent = "";
}

function say(text) {
  $("status").textContent = text;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// when() and day() (dates in the district's time zone) are in details.js.

function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null && v !== undefined) u.set(k, v);
  const s = u.toString();
  return s ? "?" + s : "";
}

async function guarded(fn) {
  clearError();
  try {
    await fn();
  } catch (e) {
    showError(e);
  }
}

// ---------------------------------------------------------------- sign in and tabs

// The sign-in screen. links: {google, microsoft} from the 401 of GET /v1/session. A district
// may be chosen with ?tenant= on this page's URL; it is passed on to the sign-in.
function showSignIn(links, message) {
  session = null;
  $("app").hidden = true;
  $("signedin").hidden = true;
  $("signin").hidden = false;
  const tenant = new URLSearchParams(location.search).get("tenant");
  for (const p of ["google", "microsoft"]) {
    const url = links && links[p];
    const a = $("signin-" + p);
    a.hidden = !url;
    if (url) a.href = url + (tenant ? "?tenant=" + encodeURIComponent(tenant) : "");
  }
  if (message) showError(message);
}

// auth sends the browser back to #signin?error=<code>&message=<text> when a sign-in failed.
function signInError() {
  const h = location.hash;
  if (!h.startsWith("#signin?")) return null;
  const p = new URLSearchParams(h.slice("#signin?".length));
  history.replaceState(null, "", location.pathname + location.search);
  return "Sign-in failed: " + (p.get("message") || p.get("error") || "unknown error") + ".";
}

async function start() {
  const failed = signInError();
  let res, data = null;
  try {
    res = await fetch("/v1/session", {credentials: "same-origin"});
    data = await res.json();
  } catch (e) {
    showError("Panel cannot be reached. Check your connection and try again.");
    return;
  }
  if (res.status === 401) {
    showSignIn(data && data.signin, failed);
    return;
  }
  if (!res.ok) {
    showError(explain(res.status, (data && data.error) || {}));
    return;
  }
  session = data;
  if (failed) showError(failed);
  $("signin").hidden = true;
  $("signedin").hidden = false;
  $("whoami").textContent = `${session.email} (${session.role}) — ` +
    (session.tenant_name || session.tenant_id);
  $("viewer-note").hidden = isAdmin();
  $("app").hidden = false;
  const tab = TABS.find((t) => location.hash.startsWith("#" + t)) || "sync";
  selectTab(tab, false);
  for (const hook of SIGNED_IN_HOOKS) guarded(hook);
}

async function signOut() {
  await api("POST", "/v1/session/signout", {});
  session = null;
  say("Signed out.");
  await start();
}

const TABS = ["sync", "people", "assets", "cart", "reports", "admins"];
// Tabs defined in other files register their loader here: name -> async function.
const TAB_LOADERS = {};
// Other files' async functions to run once signed in (alerts.js: the banners).
const SIGNED_IN_HOOKS = [];

function selectTab(name, focus) {
  for (const t of TABS) {
    const on = t === name;
    $("tab-" + t).setAttribute("aria-selected", on ? "true" : "false");
    $("tab-" + t).tabIndex = on ? 0 : -1;
    $("panel-" + t).hidden = !on;
  }
  if (focus) $("tab-" + name).focus();
  if (name === "sync") guarded(loadSync);
  if (name === "people" && !people.loaded) guarded(() => people.load(true));
  if (name === "assets" && !assets.loaded) guarded(() => assets.load(true));
  if (name === "admins") guarded(loadAdmins);
  if (TAB_LOADERS[name]) guarded(TAB_LOADERS[name]);
}

function tabKeys(ev) {
  const i = TABS.indexOf(ev.target.id.slice(4));
  let next = null;
  if (ev.key === "ArrowRight") next = TABS[(i + 1) % TABS.length];
  if (ev.key === "ArrowLeft") next = TABS[(i + TABS.length - 1) % TABS.length];
  if (ev.key === "Home") next = TABS[0];
  if (ev.key === "End") next = TABS[TABS.length - 1];
  if (next) {
    ev.preventDefault();
    selectTab(next, true);
  }
}

// ---------------------------------------------------------------- Cloud Sync

async function loadSync() {
  const [conns] = await Promise.all([api("GET", "/v1/connections"), loadRuns()]);
  const box = $("connections");
  box.replaceChildren();
  for (const c of conns.connections) box.append(connectionCard(c));
  showCallbackResult();
}

function connectionCard(c) {
  const p = PROVIDERS[c.provider];
  const id = "conn-" + c.provider;
  const card = el("article", {class: "card", id, "aria-labelledby": id + "-title", "data-status": c.status});
  card.append(el("h3", {id: id + "-title", text: p.label}));
  card.append(el("p", {class: "conn-status status-" + c.status, id: id + "-status", text: STATUS_WORDS[c.status] || c.status}));
  if (c.status_message) card.append(el("p", {class: "small", text: "Provider said: " + c.status_message}));
  const dl = el("dl");
  const row = (k, v) => dl.append(el("dt", {text: k}), el("dd", {text: v}));
  if (c.authorized_by) row("Authorized by", `${c.authorized_by} on ${when(c.authorized_at)}`);
  if (c.revoked_at) row("Revoked", when(c.revoked_at));
  row("Read-only scopes granted", c.granted_scopes.length ? c.granted_scopes.join(", ") : "none");
  if (c.missing_scopes.length) row("Missing scopes", c.missing_scopes.join(", "));
  for (const m of c.missing_permissions || []) {
    row(`Refused: ${m.listing}`, `Needs ${m.privilege || "a permission"} (${m.scope || "unknown scope"}). ${m.action || ""}`);
  }
  const r = c.last_run;
  row("Last run", r ? `${r.status} — requested ${when(r.requested_at)}; seen ${r.seen}, created ${r.created}, updated ${r.updated}, removed ${r.removed}, skipped ${r.skipped}` +
      (r.message ? ` — ${r.message}` : "") : "none yet");
  row("Next scheduled run", c.paused ? "paused (inside a pause window)" : when(c.next_sync_at));
  if (c.held_runs) row("Held runs", `${c.held_runs} waiting for approval (see the run history)`);
  card.append(dl);
  if (!isAdmin()) return card;
  const actions = el("div", {class: "actions"});
  actions.append(el("button", {type: "button", id: id + "-authorize", text: p.authorize,
                               onclick: () => authorize(c.provider)}));
  const connected = c.status === "connected" || c.status === "permission_missing";
  if (connected || c.status === "scope_missing" || c.status === "pending") {
    actions.append(el("button", {type: "button", id: id + "-deauthorize", text: "De-Authorize",
                                 onclick: () => deauthorize(c.provider)}));
  }
  actions.append(el("button", {type: "button", id: id + "-sync", text: "Request Immediate Cloud Sync Refresh",
                               disabled: !connected,
                               onclick: () => requestSync(c.provider)}));
  card.append(actions);
  return card;
}

function authorize(provider) {
  const p = PROVIDERS[provider];
  const dlg = $("confirm-authorize");
  $("ca-title").textContent = p.authorize;
  $("ca-text").textContent = p.readonly + " You will now be sent to " +
    (provider === "google" ? "Google" : "Microsoft") + " to approve this as a " +
    (provider === "google" ? "Google Workspace super admin" : "Microsoft Entra administrator") + ".";
  $("ca-form").onsubmit = (ev) => {
    ev.preventDefault();
    dlg.close();
    guarded(async () => {
      const out = await api("POST", `/v1/connections/${p.path}/authorize`, {});
      say("Sending you to the consent page…");
      window.location.assign(out.consent_url);
    });
  };
  $("ca-cancel").onclick = () => dlg.close();
  dlg.showModal();
  $("ca-ok").focus();
}

function deauthorize(provider) {
  const p = PROVIDERS[provider];
  if (!window.confirm(`De-authorize ${p.label}? Panel revokes its access and stops syncing. ` +
                      "Nothing already imported is deleted.")) return;
  guarded(async () => {
    const out = await api("POST", `/v1/connections/${p.path}/deauthorize`, {});
    say(`${p.label} de-authorized` + (out.remote_revoke === "pending" ? " (the provider will be told when it answers)." : "."));
    await loadSync();
  });
}

function requestSync(provider) {
  guarded(async () => {
    const out = await api("POST", "/v1/sync", {provider});
    const co = out.requests.some((r) => r.coalesced);
    say(`Sync requested for ${PROVIDERS[provider].label}` + (co ? " (joined a run already waiting)." : "."));
    await loadSync();
  });
}

async function loadRuns() {
  const source = $("runs-source").value;
  const out = await api("GET", "/v1/sync/runs" + qs({source, limit: 25}));
  const body = $("runs");
  body.replaceChildren();
  if (!out.items.length) body.append(el("tr", {}, el("td", {colspan: 10, text: "No runs yet."})));
  for (const r of out.items) {
    const actions = el("td", {}, runActions(r)); // cloudsync.js: Review (held) or Details
    const msg = r.status === "held" ? `Held: ${r.pending_removals} removals wait for approval` :
                (r.failure_reason ? `${r.failure_reason}: ${r.message || ""}` : (r.message || ""));
    body.append(el("tr", {"data-run": r.run_id},
      el("td", {text: when(r.requested_at)}), el("td", {text: r.source === "azure" ? "Microsoft" : "Google"}),
      el("td", {text: r.status + (r.preview ? " (preview)" : "")}), el("td", {text: r.seen}),
      el("td", {text: r.created}), el("td", {text: r.updated}), el("td", {text: r.removed}),
      el("td", {text: r.skipped}), el("td", {text: msg}), actions));
  }
}

// decide() (approve / reject a held run after reviewing it) is in cloudsync.js.

function showCallbackResult() {
  // auth sends the browser back to #cloud-sync?provider=google&result=connected|denied|error&message=…
  const h = location.hash;
  if (!h.startsWith("#cloud-sync?")) return;
  const p = new URLSearchParams(h.slice("#cloud-sync?".length));
  const name = (PROVIDERS[p.get("provider")] || PROVIDERS.google).label;
  const result = p.get("result");
  if (result === "connected") say(`${name} connected. The first sync has started.`);
  else if (result === "denied") showError(`${name} authorization was declined, so nothing was connected.`);
  else if (result) showError(`${name} authorization failed: ${p.get("message") || "unknown error"}.`);
  history.replaceState(null, "", location.pathname + location.search);
}

// ---------------------------------------------------------------- lists with keyset pages

class Pager {
  constructor(name, path, filters, render) {
    this.name = name;
    this.path = path;
    this.filters = filters;
    this.render = render;
    this.cursor = null;
    this.next = null;
    this.loaded = false;
  }

  async load(first) {
    const params = this.filters();
    params.limit = 25;
    if (!first && this.next) params.cursor = this.next;
    const out = await api("GET", this.path + qs(params));
    this.loaded = true;
    this.next = out.next_cursor;
    $(this.name + "-next").disabled = !this.next;
    this.render(out.items);
    say(`${out.items.length} ${this.name} shown` + (this.next ? "; more on the next page." : "."));
  }
}

function linkButton(text, label, onclick) {
  return el("button", {type: "button", class: "link", text, "aria-label": label, onclick});
}

// ---------------------------------------------------------------- People

const people = new Pager("people", "/v1/people", () => ({
  q: $("people-q").value.trim(), status: $("people-status").value,
  source: $("people-source").value, org_unit: $("people-ou").value.trim(),
  has_checkouts: $("people-hasco").checked ? "true" : "",
}), (items) => {
  const body = $("people");
  body.replaceChildren();
  if (!items.length) body.append(el("tr", {}, el("td", {colspan: 5, text: "No People match."})));
  for (const p of items) {
    body.append(el("tr", {},
      el("td", {}, linkButton(p.display_name || p.email, `Show ${p.display_name || p.email}`, () => guarded(() => showPerson(p.person_id)))),
      el("td", {text: p.email}), el("td", {text: p.org_unit_path || "—"}),
      el("td", {text: p.sources.map((s) => s === "azure" ? "Microsoft" : "Google").join(", ") || "—"}),
      el("td", {text: p.status})));
  }
});

async function showPerson(id) {
  const [p, cos] = await Promise.all([api("GET", `/v1/people/${id}`), api("GET", `/v1/people/${id}/checkouts?limit=50`)]);
  const box = $("person");
  box.replaceChildren();
  box.append(el("h3", {text: p.display_name || p.email}));
  box.append(el("p", {text: `${p.email} — ${p.status}` + (p.removed_at ? ` (removed ${when(p.removed_at)})` : "")}));
  box.append(personDetails(p));
  box.append(await personDevices(p)); // people.js
  if ((p.addresses || []).length) {
    box.append(el("h4", {text: "Addresses"}));
    const ul = el("ul");
    for (const a of p.addresses)
      ul.append(el("li", {text: `${a.address} (${a.sources.map((s) => s === "azure" ? "Microsoft" : "Google").join(", ")})`}));
    box.append(ul);
  }
  box.append(el("h4", {text: "Checkouts"}));
  box.append(checkoutList(cos.items, true));
  box.hidden = false;
  box.focus();
}

function checkoutList(items, showAsset) {
  if (!items.length) return el("p", {text: "None."});
  const ul = el("ul", {class: "history"});
  for (const c of items) {
    const who = showAsset ? [c.model, c.asset_tag || c.serial_number || `asset ${c.asset_id.slice(0, 8)}`].filter(Boolean).join(" ")
                          : (c.person_name || c.person_id);
    let text = `${when(c.checked_out_at)}: out to ${who} by ${c.checked_out_by}`;
    if (c.due_at) text += `, due ${when(c.due_at)}`;
    if (c.note) text += ` — ${c.note}`;
    text += c.checked_in_at ? `; back ${when(c.checked_in_at)}` + (c.condition ? ` (${c.condition})` : "") : (c.overdue ? "; OVERDUE" : "; still out");
    ul.append(el("li", {text}));
  }
  return ul;
}

// ---------------------------------------------------------------- Assets

const assets = new Pager("assets", "/v1/assets", () => ({
  q: $("assets-q").value.trim(), status: $("assets-status").value,
  checked_out: $("assets-co").value, org_unit: $("assets-ou").value.trim(),
  aue_before: $("assets-aue").value, google_status: $("assets-gstatus").value,
  last_seen_before: $("assets-seen").value,
}), (items) => {
  const body = $("assets");
  body.replaceChildren();
  if (!items.length) body.append(el("tr", {}, el("td", {colspan: 9, text: "No Assets match."})));
  for (const a of items) {
    const label = a.serial_number || a.asset_tag || a.asset_id.slice(0, 8);
    body.append(el("tr", {"data-asset": a.asset_id},
      el("td", {}, linkButton(label, `Show asset ${label}`, () => guarded(() => showAsset(a.asset_id)))),
      el("td", {text: a.asset_tag || "—"}), el("td", {text: a.model || "—"}),
      el("td", {text: LIFECYCLE[a.lifecycle] || a.lifecycle}), el("td", {text: a.org_unit_path || "—"}),
      el("td", {text: a.google_status || (a.manual ? "added by hand" : "—")}),
      el("td", {text: a.auto_update_expiry ? day(a.auto_update_expiry) : "—"}),
      el("td", {text: a.last_sync ? when(a.last_sync) : "—"}),
      el("td", {text: a.current_checkout ? (a.current_checkout.person_name || a.current_checkout.person_id) : "—"})));
  }
});

// showAsset (an Asset's page) is in inventory.js.

function checkinForm(a) {
  const form = el("form", {class: "inline", id: "checkin-form", "aria-label": "Check in"});
  form.append(el("label", {for: "ci-condition", text: "Condition"}), el("input", {id: "ci-condition", type: "text", maxlength: 200}),
              el("label", {for: "ci-note", text: "Note"}), el("input", {id: "ci-note", type: "text", maxlength: 2000}),
              el("button", {type: "submit", id: "ci-submit", text: "Check in"}));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      const body = {};
      if ($("ci-condition").value.trim()) body.condition = $("ci-condition").value.trim();
      if ($("ci-note").value.trim()) body.note = $("ci-note").value.trim();
      await api("POST", `/v1/assets/${a.asset_id}/checkin`, body);
      say("Checked in.");
      await showAsset(a.asset_id);
      await assets.load(true);
    });
  });
  return form;
}

function checkoutForm(a) {
  const form = el("form", {class: "inline", id: "checkout-form", "aria-label": "Check out"});
  const input = el("input", {id: "co-person", type: "text", role: "combobox", "aria-autocomplete": "list",
                             "aria-expanded": "false", "aria-controls": "co-options", autocomplete: "off"});
  const list = el("ul", {id: "co-options", role: "listbox", class: "options", "aria-label": "Matching People", hidden: true});
  let chosen = null;
  let active = -1;
  let timer = null;
  const options = () => Array.from(list.children);
  const mark = (i) => {
    options().forEach((o, j) => o.setAttribute("aria-selected", j === i ? "true" : "false"));
    active = i;
    if (i >= 0) input.setAttribute("aria-activedescendant", options()[i].id);
    else input.removeAttribute("aria-activedescendant");
  };
  const pick = (p) => {
    chosen = p;
    input.value = `${p.display_name} <${p.email}>`;
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
  };
  input.addEventListener("input", () => {
    chosen = null;
    clearTimeout(timer);
    const q = input.value.trim();
    if (q.length < 2) {
      list.hidden = true;
      return;
    }
    timer = setTimeout(() => guarded(async () => {
      const out = await api("GET", "/v1/people" + qs({q, status: "active", limit: 8}));
      list.replaceChildren();
      out.items.forEach((p, i) => list.append(el("li", {role: "option", id: `co-opt-${i}`, "aria-selected": "false",
                                                        text: `${p.display_name} <${p.email}>`,
                                                        onmousedown: (ev) => { ev.preventDefault(); pick(p); }})));
      list._people = out.items;
      list.hidden = !out.items.length;
      input.setAttribute("aria-expanded", out.items.length ? "true" : "false");
      mark(-1);
      say(`${out.items.length} matching People.`);
    }), 200);
  });
  input.addEventListener("keydown", (ev) => {
    const n = options().length;
    if (list.hidden || !n) return;
    if (ev.key === "ArrowDown") { ev.preventDefault(); mark((active + 1) % n); }
    else if (ev.key === "ArrowUp") { ev.preventDefault(); mark((active + n - 1) % n); }
    else if (ev.key === "Enter" && active >= 0) { ev.preventDefault(); pick(list._people[active]); }
    else if (ev.key === "Escape") { list.hidden = true; input.setAttribute("aria-expanded", "false"); }
  });
  form.append(el("label", {for: "co-person", text: "Check out to (type a name or email)"}), el("div", {class: "combo"}, input, list),
              el("label", {for: "co-due", text: "Due date"}), el("input", {id: "co-due", type: "date"}),
              el("label", {for: "co-note", text: "Note"}), el("input", {id: "co-note", type: "text", maxlength: 2000}),
              el("button", {type: "submit", id: "co-submit", text: "Check out"}));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (!chosen) {
      showError("Choose a Person from the list first (type at least two letters of a name or email).");
      input.focus();
      return;
    }
    guarded(async () => {
      const body = {person_id: chosen.person_id};
      if ($("co-due").value) body.due_at = $("co-due").value;
      if ($("co-note").value.trim()) body.note = $("co-note").value.trim();
      await api("POST", `/v1/assets/${a.asset_id}/checkout`, body);
      say(`Checked out to ${chosen.display_name}.`);
      await showAsset(a.asset_id);
      await assets.load(true);
    });
  });
  return form;
}

// ---------------------------------------------------------------- Panel admins

async function loadAdmins() {
  const out = await api("GET", "/v1/admins");
  const body = $("admins");
  body.replaceChildren();
  $("admin-form").hidden = !isAdmin();
  for (const a of out.items) {
    const providers = [a.allow_google ? "Google" : null, a.allow_microsoft ? "Microsoft" : null]
      .filter(Boolean).join(", ");
    const role = el("td", {text: a.role});
    const actions = el("td");
    if (isAdmin()) {
      const other = a.role === "admin" ? "viewer" : "admin";
      actions.append(
        el("button", {type: "button", text: `Make ${other}`, "aria-label": `Make ${a.email} ${other}`,
                      onclick: () => changeAdmin(a, {role: other})}),
        el("button", {type: "button", text: "Remove", "aria-label": `Remove ${a.email}`,
                      onclick: () => removeAdmin(a)}));
    }
    body.append(el("tr", {"data-account": a.account_id}, el("td", {text: a.email}), role,
                   el("td", {text: providers}), el("td", {text: when(a.last_signin_at)}),
                   el("td", {text: a.created_by}), actions));
  }
  say(`${out.items.length} Panel admins and viewers.`);
}

function changeAdmin(a, change) {
  guarded(async () => {
    await api("PATCH", `/v1/admins/${a.account_id}`, change);
    if (a.account_id === session.account_id) await start(); // my own role changed
    else await loadAdmins();
    say(`${a.email} is now ${change.role}.`);
  });
}

function removeAdmin(a) {
  if (!window.confirm(`Remove ${a.email}? They are signed out at once and can no longer sign in.`)) return;
  guarded(async () => {
    await api("DELETE", `/v1/admins/${a.account_id}`);
    await loadAdmins();
    say(`${a.email} removed.`);
  });
}

// ---------------------------------------------------------------- wiring

document.addEventListener("DOMContentLoaded", () => {
  $("signout").addEventListener("click", () => guarded(signOut));
  for (const t of TABS) {
    $("tab-" + t).addEventListener("click", () => selectTab(t, false));
    $("tab-" + t).addEventListener("keydown", tabKeys);
  }
  $("runs-refresh").addEventListener("click", () => guarded(loadSync));
  $("runs-source").addEventListener("change", () => guarded(loadRuns));
  $("people-form").addEventListener("submit", (ev) => { ev.preventDefault(); guarded(() => people.load(true)); });
  $("people-first").addEventListener("click", () => guarded(() => people.load(true)));
  $("people-next").addEventListener("click", () => guarded(() => people.load(false)));
  $("assets-form").addEventListener("submit", (ev) => { ev.preventDefault(); guarded(() => assets.load(true)); });
  $("assets-first").addEventListener("click", () => guarded(() => assets.load(true)));
  $("assets-next").addEventListener("click", () => guarded(() => assets.load(false)));
  $("admin-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    guarded(async () => {
      const email = $("admin-email").value.trim();
      await api("POST", "/v1/admins", {email, role: $("admin-role").value});
      $("admin-email").value = "";
      await loadAdmins();
      say(`${email} invited: they can now sign in with Google or Microsoft.`);
    });
  });
  // Coming back from a consent page on this same origin is only a fragment change.
  window.addEventListener("hashchange", () => {
    if (location.hash.startsWith("#cloud-sync?") && session) selectTab("sync", false);
    else if (location.hash.startsWith("#signin?")) guarded(start);
  });
  guarded(start);
});

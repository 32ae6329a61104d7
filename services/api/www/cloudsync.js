// Cloud Sync in detail: a run's counts, its report (preview runs) and the objects that need
// attention (skipped, dead-lettered, match cases); a held run's list of the People, Assets
// and org units it would remove, to approve or reject after reading it; open match cases to
// resolve; preview runs; the schedule, pause windows and deletion thresholds. Loaded after
// app.js and details.js; app.js's run table calls runActions().
"use strict";

const CLOUD_LABEL = {google: "Google", azure: "Microsoft"};
const OUTCOME_WORDS = {skipped: "Skipped", invalid: "Dead-lettered (could not be applied)",
                       match_case: "Match case (waits for you)", held_removal: "Would be removed"};
const KIND_WORDS = {person: "Person", device: "Chromebook", org_unit: "Org unit"};
const RUN_COUNTS = [["seen", "Seen"], ["created", "Created"], ["updated", "Updated"],
                    ["unchanged", "Unchanged"], ["removed", "Removed"], ["skipped", "Skipped"],
                    ["match_cases", "Match cases"], ["pending_removals", "Removals waiting for approval"]];

function runTitle(r) {
  return `${CLOUD_LABEL[r.source] || r.source} ${r.preview ? "preview " : ""}run of ${when(r.requested_at)}`;
}

// The Actions cell of a run row: Review for a held run, Details for the others.
function runActions(r) {
  const held = r.status === "held";
  return el("button", {type: "button", text: held ? "Review" : "Details",
                       "aria-label": `${held ? "Review held" : "Details of"} ${r.source} run of ${when(r.requested_at)}`,
                       onclick: () => guarded(() => showRun(r.run_id))});
}

// What an outcome is about, for a person to read.
function outcomeSubject(o) {
  if (o.object_kind === "person") return [o.display_name, o.email].filter(Boolean).join(" — ") || o.source_id || "—";
  if (o.object_kind === "device") return [o.serial_number, o.asset_tag ? `tag ${o.asset_tag}` : null].filter(Boolean).join(", ") || o.source_id || "—";
  return o.org_unit_path || o.source_id || "—";
}

async function fetchAll(path, max) {
  let items = [], cursor = null;
  do {
    const page = await api("GET", path + (path.includes("?") ? "&" : "?") + qs({limit: 500, cursor}).slice(1));
    items = items.concat(page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return {items, more: !!cursor};
}

async function showRun(id) {
  const [r, outs] = await Promise.all([api("GET", `/v1/sync/runs/${id}`),
                                       fetchAll(`/v1/sync/runs/${id}/outcomes`, 5000)]);
  const box = $("run-detail");
  box.replaceChildren(el("h3", {id: "run-detail-title", text: runTitle(r)}));
  const dl = el("dl", {id: "run-counts"});
  const row = (k, v) => { if (v !== null && v !== undefined && v !== "") dl.append(el("dt", {text: k}), el("dd", {text: String(v)})); };
  row("Status", r.status + (r.failure_reason ? ` (${r.failure_reason})` : ""));
  row("Message", r.message);
  row("Started", r.started_at ? when(r.started_at) : null);
  row("Finished", r.finished_at ? when(r.finished_at) : null);
  for (const [k, label] of RUN_COUNTS) if (r[k]) row(label, r[k]);
  if (r.decided_by) row("Decided", `${r.status} by ${r.decided_by}, ${when(r.decided_at)}`);
  box.append(dl);
  if (r.report && Object.keys(r.report).length) {
    box.append(el("h4", {text: r.preview ? "Preview report: what this run would do" : "Report"}));
    const rep = el("dl", {id: "run-report"});
    for (const [k, v] of Object.entries(r.report)) {
      if (isEmpty(v)) continue;
      rep.append(el("dt", {text: labelFromKey(k)}), el("dd", {text: formatValue(v)}));
    }
    box.append(rep);
  }
  const removals = outs.items.filter((o) => o.outcome === "held_removal");
  const others = outs.items.filter((o) => o.outcome !== "held_removal");
  if (r.status === "held") {
    const people = removals.filter((o) => o.object_kind === "person").length;
    const devices = removals.filter((o) => o.object_kind === "device").length;
    box.append(el("h4", {id: "removals-title", text: `Approving removes ${people} People, ${devices} Chromebooks and ${removals.length - people - devices} org units`}));
    box.append(el("p", {class: "note", text: "Removed People stay as tombstones with their checkout history; nothing is deleted in Google or Microsoft."}));
    box.append(outcomeTable("removals", "removals-title", removals, false));
    if (outs.more) box.append(el("p", {class: "small", text: "Only the first 5,000 are listed."}));
    if (isAdmin()) {
      box.append(el("div", {class: "actions"},
        el("button", {type: "button", id: "run-approve", text: `Approve: remove ${removals.length}`,
                      "aria-label": `Approve held ${r.source} run of ${when(r.requested_at)}`, onclick: () => decide(r, "approve", removals.length)}),
        el("button", {type: "button", id: "run-reject", text: "Reject: remove nothing",
                      "aria-label": `Reject held ${r.source} run of ${when(r.requested_at)}`, onclick: () => decide(r, "reject", 0)})));
    }
  }
  box.append(el("h4", {id: "attention-title", text: "Objects that need attention"}));
  box.append(others.length ? outcomeTable("attention", "attention-title", others, true) : el("p", {text: "None."}));
  box.hidden = false;
  box.focus();
}

function outcomeTable(id, labelledby, items, withOutcome) {
  const t = el("table", {class: "grid", id, "aria-labelledby": labelledby},
    el("thead", {}, el("tr", {}, el("th", {scope: "col", text: "Kind"}), el("th", {scope: "col", text: "Who or what"}),
                          el("th", {scope: "col", text: "Org unit"}),
                          withOutcome ? el("th", {scope: "col", text: "Outcome"}) : null,
                          el("th", {scope: "col", text: "Reason"}))));
  const tb = el("tbody");
  for (const o of items) {
    tb.append(el("tr", {"data-outcome": o.outcome, "data-kind": o.object_kind},
      el("td", {text: KIND_WORDS[o.object_kind] || o.object_kind}), el("td", {text: outcomeSubject(o)}),
      el("td", {text: o.object_kind === "org_unit" ? "—" : (o.org_unit_path || "—")}),
      withOutcome ? el("td", {text: OUTCOME_WORDS[o.outcome] || o.outcome}) : null,
      el("td", {text: o.reason})));
  }
  t.append(tb);
  return t;
}

function decide(run, what, n) {
  const verb = what === "approve" ? "Approve" : "Reject";
  if (!window.confirm(`${verb} this held run? ` + (what === "approve"
      ? `The ${n} People, Chromebooks and org units listed will be removed.` : "Nothing will be removed."))) return;
  guarded(async () => {
    await api("POST", `/v1/sync/runs/${run.run_id}/${what}`, {});
    await loadSync();
    await showRun(run.run_id);
    await loadAlerts(); // alerts.js: the held-run banner goes
    say(`Run ${what === "approve" ? "approved" : "rejected"}.`);
  });
}

function requestPreview(provider) {
  guarded(async () => {
    const out = await api("POST", "/v1/sync", {provider, preview: true});
    await loadSync();
    say(`Preview run requested for ${CLOUD_LABEL[provider]}: it changes nothing; its report shows what a sync would do.` +
        (out.requests.some((q) => q.coalesced) ? " (It joined a run already waiting.)" : ""));
  });
}

// ---------------------------------------------------------------- match cases

async function loadCases() {
  const out = await api("GET", "/v1/sync/match-cases?status=open&limit=100");
  const body = $("cases");
  body.replaceChildren();
  if (!out.items.length) body.append(el("tr", {}, el("td", {colspan: 4, text: "No open match cases."})));
  for (const m of out.items) {
    const src = m.source_record || {};
    const f = src.fields || {};
    const who = [f.display_name, src.email].filter(Boolean).join(" — ") || m.source_id;
    const choice = el("fieldset", {class: "choices"}, el("legend", {text: `Who is ${who}?`}));
    const name = "case-" + m.case_id;
    for (const p of m.candidates || []) {
      choice.append(el("label", {}, el("input", {type: "radio", name, value: p.person_id}),
                       ` ${p.display_name} <${p.email}> (${p.org_unit_path || "no org unit"})`));
    }
    choice.append(el("label", {}, el("input", {type: "radio", name, value: "new"}), " A new Person"));
    const actions = el("td");
    if (isAdmin()) {
      actions.append(choice, el("button", {type: "button", text: "Resolve", "aria-label": `Resolve the match case of ${who}`,
                                           onclick: () => resolveCase(m, name, who)}));
    }
    body.append(el("tr", {"data-case": m.case_id},
      el("td", {text: `${CLOUD_LABEL[m.source] || m.source}: ${who}`}), el("td", {text: m.reason}),
      el("td", {text: when(m.created_at)}), actions));
  }
}

function resolveCase(m, name, who) {
  const picked = document.querySelector(`input[name="${name}"]:checked`);
  if (!picked) {
    showError(`Choose who ${who} is first: one of the People listed or a new Person.`);
    return;
  }
  guarded(async () => {
    const res = await api("POST", `/v1/sync/match-cases/${m.case_id}/resolve`,
                          {person_id: picked.value === "new" ? null : picked.value});
    await loadCases();
    // a second account of one cloud: the Person may now show the other account's values
    say(`Match case of ${who} resolved.` + (res && res.warning ? ` Note: ${res.warning}.` : ""));
  });
}

// ---------------------------------------------------------------- settings

function windowRow(w) {
  const tr = el("tr", {class: "pause-window"});
  const i = $("pause-windows").children.length + 1;
  tr.append(el("td", {}, el("label", {class: "sr", for: `pw-start-${i}`, text: `Pause ${i} starts`}),
                      el("input", {type: "datetime-local", id: `pw-start-${i}`, class: "pw-start", value: zoneInputValue(w.starts_at)})),
            el("td", {}, el("label", {class: "sr", for: `pw-end-${i}`, text: `Pause ${i} ends`}),
                      el("input", {type: "datetime-local", id: `pw-end-${i}`, class: "pw-end", value: zoneInputValue(w.ends_at)})),
            el("td", {}, el("label", {class: "sr", for: `pw-reason-${i}`, text: `Pause ${i} reason`}),
                      el("input", {type: "text", id: `pw-reason-${i}`, class: "pw-reason", maxlength: 500, value: w.reason || ""})),
            el("td", {}, el("button", {type: "button", text: "Remove", "aria-label": `Remove pause ${i}`, onclick: () => tr.remove()})));
  return tr;
}

async function loadSettings() {
  const s = await api("GET", "/v1/sync/settings");
  $("set-interval").value = Math.round(s.sync_interval_seconds / 60);
  $("set-count").value = s.delete_threshold_count;
  $("set-percent").value = s.delete_threshold_percent;
  $("pw-zone").textContent = districtZone();
  const body = $("pause-windows");
  body.replaceChildren();
  for (const w of s.pause_windows) body.append(windowRow(w));
  // A viewer reads the settings; the change controls are not there for them.
  $("settings-form").querySelectorAll("input").forEach((n) => { n.disabled = !isAdmin(); });
  $("settings-form").querySelectorAll("button").forEach((n) => { n.hidden = !isAdmin(); });
}

// Checks what the API would refuse, with words for a person; null when fine.
function settingsProblems(minutes, count, percent, windows) {
  const bad = [];
  if (!Number.isInteger(minutes) || minutes < 5 || minutes > 7 * 24 * 60) bad.push("Sync every: a whole number of minutes from 5 to 10080 (7 days)");
  if (!Number.isInteger(count) || count < 0) bad.push("Hold a run removing more than: a whole number, 0 or more");
  if (!Number.isInteger(percent) || percent < 0 || percent > 100) bad.push("or more than this percent: a whole number from 0 to 100");
  windows.forEach((w, i) => {
    if (!w.starts_at || !w.ends_at) bad.push(`Pause ${i + 1}: give both its start and its end`);
    else if (new Date(w.ends_at) <= new Date(w.starts_at)) bad.push(`Pause ${i + 1}: it must end after it starts`);
  });
  return bad.length ? bad : null;
}

async function saveSettings() {
  const minutes = Number($("set-interval").value), count = Number($("set-count").value);
  const percent = Number($("set-percent").value);
  const windows = Array.from($("pause-windows").children).map((tr) => {
    const s = tr.querySelector(".pw-start").value, e = tr.querySelector(".pw-end").value;
    // Typed in the district's time zone (shown in the table's header), not the browser's.
    const w = {starts_at: instantFromZoneInput(s), ends_at: instantFromZoneInput(e)};
    const why = tr.querySelector(".pw-reason").value.trim();
    if (why) w.reason = why;
    return w;
  });
  const bad = settingsProblems(minutes, count, percent, windows);
  if (bad) throw new Error("Settings not saved: " + bad.join("; ") + ".");
  await api("PUT", "/v1/sync/settings", {sync_interval_seconds: minutes * 60, delete_threshold_count: count,
                                         delete_threshold_percent: percent, pause_windows: windows});
  await loadSettings();
  say("Sync settings saved.");
}

document.addEventListener("DOMContentLoaded", () => {
  $("preview-google").addEventListener("click", () => requestPreview("google"));
  $("preview-azure").addEventListener("click", () => requestPreview("azure"));
  $("cases-refresh").addEventListener("click", () => guarded(loadCases));
  $("pw-add").addEventListener("click", () => {
    const tr = windowRow({});
    $("pause-windows").append(tr);
    tr.querySelector("input").focus();
  });
  $("settings-form").addEventListener("submit", (ev) => { ev.preventDefault(); guarded(saveSettings); });
  TAB_LOADERS.sync = async () => {
    $("preview-google").hidden = $("preview-azure").hidden = !isAdmin();
    await Promise.all([loadCases(), loadSettings()]);
  };
});

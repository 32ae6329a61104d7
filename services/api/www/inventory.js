// An Asset's page: Panel's fields, who has it and who last used it (Google's recentUsers),
// its Google fields under readable labels, edit (tag, lifecycle, notes of hand-added
// Assets), record an audit, retire; its checkout and audit history. Loaded after app.js and
// details.js; the check-out / check-in forms are app.js's.
"use strict";

// Google's recentUsers, most recent first: [{type, email}] (absent with the BASIC projection).
function recentUsers(a) {
  const r = a.device && a.device.recent_users;
  return Array.isArray(r) ? r.filter((u) => u && u.email) : [];
}

async function showAsset(id) {
  const [a, hist, audits] = await Promise.all([
    api("GET", `/v1/assets/${id}`), api("GET", `/v1/assets/${id}/checkouts?limit=50`),
    api("GET", `/v1/assets/${id}/audits?limit=20`)]);
  const box = $("asset");
  box.replaceChildren();
  const label = a.serial_number || a.asset_tag || a.asset_id;
  box.append(el("h3", {id: "asset-title", text: `${a.model || "Asset"} ${label}`}));

  const dl = el("dl", {id: "asset-summary"});
  const row = (k, v) => { if (v !== null && v !== undefined && v !== "") dl.append(el("dt", {text: k}), el("dd", {text: v})); };
  // The shown tag is Panel's when set, else Google's annotatedAssetId: say which.
  const tagFrom = a.panel_asset_tag && a.google_asset_tag && a.panel_asset_tag !== a.google_asset_tag
    ? ` (set in Panel; Google: ${a.google_asset_tag})`
    : !a.panel_asset_tag && a.google_asset_tag ? " (from Google)" : "";
  row("Asset tag", a.asset_tag ? a.asset_tag + tagFrom : a.asset_tag);
  row("Serial number", a.serial_number);
  row("Status in Panel", (LIFECYCLE[a.lifecycle] || a.lifecycle) +
      (a.lifecycle_changed_by ? ` (set by ${a.lifecycle_changed_by}, ${when(a.lifecycle_changed_at)})` : ""));
  row("In Google", a.in_google ? `Yes — ${a.google_status || "status unknown"}` : (a.manual ? "No (added by hand)" : `No longer (left ${when(a.left_google_at)})`));
  row("Org unit", a.org_unit_path);
  row("Auto-update expiry", a.auto_update_expiry ? day(a.auto_update_expiry) : null);
  row("Last seen by Google", a.last_sync ? when(a.last_sync) : null);
  const c = a.current_checkout;
  row("Checked out to", c ? `${c.person_name || c.person_id} since ${when(c.checked_out_at)}` +
      (c.due_at ? `, due ${when(c.due_at)}` : "") + (c.overdue ? " — OVERDUE" : "") : "Nobody (available)");
  const users = recentUsers(a);
  row("Last used by", users.length ? users[0].email : null);
  row("Last audit", a.audited_at ? `${when(a.audited_at)} by ${a.audited_by}` : "Never audited");
  row("Next audit due", a.next_audit_due ? day(a.next_audit_due) + (a.audit_overdue ? " (overdue)" : "") : null);
  if (a.manual) row("Notes", a.notes);
  row("Notes (Panel)", a.panel_notes);
  box.append(dl);
  if (c && users.length && c.person_email && users[0].email.toLowerCase() !== c.person_email.toLowerCase()) {
    box.append(el("p", {class: "note", id: "asset-swapped",
                        text: `Checked out to ${c.person_name}, but last used by ${users[0].email}: the devices may have been swapped.`}));
  }

  if (c) {
    box.append(el("p", {id: "asset-current", text: `Checked out to ${c.person_name || c.person_id} since ${when(c.checked_out_at)}` +
                        (c.due_at ? `, due ${when(c.due_at)}` : "") + (c.overdue ? " — overdue" : "")}));
    if (isAdmin()) box.append(checkinForm(a));
  } else if (a.lifecycle !== "retired" && isAdmin()) {
    box.append(checkoutForm(a));
  }
  if (isAdmin()) box.append(assetEditForm(a), assetAuditForm(a), assetRetire(a));

  if (a.in_google || Object.keys(a.device || {}).length) {
    box.append(el("h4", {text: "From Google"}), assetGoogleDetails(a));
  }
  if (users.length) {
    box.append(el("h4", {text: "Recent users (Google, most recent first)"}));
    box.append(el("ul", {id: "asset-recent-users"}, ...users.map((u) => el("li", {text: u.email}))));
  }
  box.append(el("h4", {text: "Checkout history"}));
  box.append(checkoutList(hist.items, false));
  box.append(el("h4", {text: "Audits"}));
  if (!audits.items.length) box.append(el("p", {text: "None."}));
  else box.append(el("ul", {class: "history", id: "asset-audits"}, ...audits.items.map((u) =>
    el("li", {text: `${when(u.audited_at)} by ${u.audited_by}` + (u.note ? ` — ${u.note}` : "")}))));
  box.hidden = false;
  box.focus();
}

// Edit the admin-owned fields: asset tag, lifecycle, Panel's own notes (every Asset) and the
// notes of a hand-added Asset (a Chromebook's notes are Google's, shown under "From Google").
function assetEditForm(a) {
  const form = el("form", {class: "inline", id: "asset-edit", "aria-label": "Edit asset"});
  const select = el("select", {id: "ae-lifecycle"});
  for (const [v, t] of Object.entries(LIFECYCLE)) {
    if (v === "retired" && a.lifecycle !== "retired") continue; // Retire has its own button
    select.append(el("option", {value: v, text: t, selected: v === a.lifecycle}));
  }
  form.append(el("label", {for: "ae-tag", text: "Asset tag"}),
              el("input", {id: "ae-tag", type: "text", maxlength: 64, value: a.asset_tag || "", autocomplete: "off"}),
              el("label", {for: "ae-lifecycle", text: "Status in Panel"}), select);
  if (a.manual) {
    form.append(el("label", {for: "ae-notes", text: "Notes"}),
                el("input", {id: "ae-notes", type: "text", maxlength: 2000, value: a.notes || ""}));
  }
  form.append(el("label", {for: "ae-panel-notes", text: "Notes (Panel)"}),
              el("input", {id: "ae-panel-notes", type: "text", maxlength: 2000, value: a.panel_notes || ""}));
  form.append(el("button", {type: "submit", id: "ae-save", text: "Save changes"}));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const body = {};
    const tag = $("ae-tag").value.trim();
    if (tag !== (a.panel_asset_tag || a.asset_tag || "")) body.asset_tag = tag || null;
    if (select.value !== a.lifecycle) body.lifecycle = select.value;
    if (a.manual) {
      const notes = $("ae-notes").value.trim();
      if (notes !== (a.notes || "")) body.notes = notes || null;
    }
    const panelNotes = $("ae-panel-notes").value.trim();
    if (panelNotes !== (a.panel_notes || "")) body.panel_notes = panelNotes || null;
    if (!Object.keys(body).length) {
      say("Nothing changed.");
      return;
    }
    guarded(async () => {
      await api("PATCH", `/v1/assets/${a.asset_id}`, body);
      await showAsset(a.asset_id);
      await assets.load(true);
      say("Asset saved.");
    });
  });
  return form;
}

function assetAuditForm(a) {
  const form = el("form", {class: "inline", id: "asset-audit", "aria-label": "Record an audit"});
  form.append(el("label", {for: "au-note", text: "Audit note"}),
              el("input", {id: "au-note", type: "text", maxlength: 2000, placeholder: "seen in room 12"}),
              el("label", {for: "au-due", text: "Next audit due"}),
              el("input", {id: "au-due", type: "date"}),
              el("button", {type: "submit", id: "au-submit", text: "Record audit"}));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const body = {};
    if ($("au-note").value.trim()) body.note = $("au-note").value.trim();
    if ($("au-due").value) body.next_audit_due = $("au-due").value;
    guarded(async () => {
      await api("POST", `/v1/assets/${a.asset_id}/audit`, body);
      await showAsset(a.asset_id);
      say("Audit recorded.");
    });
  });
  return form;
}

function assetRetire(a) {
  const wrap = el("div", {class: "actions"});
  if (a.lifecycle === "retired") return wrap;
  const out = !!a.current_checkout;
  wrap.append(el("button", {type: "button", id: "asset-retire", text: "Retire", disabled: out,
                            "aria-describedby": out ? "asset-retire-why" : null,
                            onclick: () => {
                              if (!window.confirm("Retire this Asset? A retired Asset cannot be checked out.")) return;
                              guarded(async () => {
                                await api("POST", `/v1/assets/${a.asset_id}/retire`, {});
                                await showAsset(a.asset_id);
                                await assets.load(true);
                                say("Asset retired.");
                              });
                            }}));
  if (out) wrap.append(el("span", {id: "asset-retire-why", class: "small", text: "Check it in before retiring it."}));
  return wrap;
}

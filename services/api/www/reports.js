// Overdue checkouts and audits due: the two lists a coordinator works through each week.
// Loaded after app.js, details.js and inventory.js (a row opens the Asset's page).
"use strict";

// Today in the district's time zone, as YYYY-MM-DD.
function districtToday() {
  try {
    return new Intl.DateTimeFormat("en-CA", {timeZone: districtZone(), year: "numeric", month: "2-digit", day: "2-digit"}).format(new Date());
  } catch (e) {
    return new Date().toISOString().slice(0, 10);
  }
}

function openAsset(id) {
  selectTab("assets", false);
  guarded(() => showAsset(id));
}

async function loadReports() {
  if (!$("auditsdue-before").value) $("auditsdue-before").value = districtToday();
  const [overdue, due, swapped] = await Promise.all([
    api("GET", "/v1/checkouts" + qs({overdue: "true", limit: 200})),
    api("GET", "/v1/assets" + qs({audit_due_before: $("auditsdue-before").value, limit: 200})),
    api("GET", "/v1/assets" + qs({swapped: "true", limit: 200}))]);
  const sb = $("swapped");
  sb.replaceChildren();
  if (!swapped.items.length) sb.append(el("tr", {}, el("td", {colspan: 4, text: "None: every checked-out Chromebook was last used by its Person."})));
  for (const a of swapped.items) {
    const label = a.asset_tag || a.serial_number || a.asset_id.slice(0, 8);
    const c = a.current_checkout;
    sb.append(el("tr", {"data-asset": a.asset_id},
      el("td", {}, linkButton(label, `Show asset ${label}`, () => openAsset(a.asset_id))),
      el("td", {text: `${c.person_name} <${c.person_email}>`}),
      el("td", {text: recentUsers(a)[0].email}), el("td", {text: a.last_sync ? when(a.last_sync) : "—"})));
  }
  const assetsById = {};
  // Overdue rows name the Asset by id; fetch their labels (at most one page of them).
  await Promise.all([...new Set(overdue.items.map((c) => c.asset_id))].map(async (id) => {
    assetsById[id] = await api("GET", `/v1/assets/${id}`);
  }));
  const ob = $("overdue");
  ob.replaceChildren();
  if (!overdue.items.length) ob.append(el("tr", {}, el("td", {colspan: 5, text: "Nothing is overdue."})));
  for (const c of overdue.items) {
    const a = assetsById[c.asset_id] || {};
    const label = a.asset_tag || a.serial_number || c.asset_id.slice(0, 8);
    ob.append(el("tr", {"data-checkout": c.checkout_id},
      el("td", {}, linkButton(label, `Show asset ${label}`, () => openAsset(c.asset_id))),
      el("td", {text: `${c.person_name || c.person_id}` + (c.person_email ? ` <${c.person_email}>` : "")}),
      el("td", {text: when(c.checked_out_at)}), el("td", {text: when(c.due_at)}),
      el("td", {text: c.checked_out_by})));
  }
  const db = $("auditsdue");
  db.replaceChildren();
  if (!due.items.length) db.append(el("tr", {}, el("td", {colspan: 4, text: "No audits due."})));
  for (const a of due.items) {
    const label = a.asset_tag || a.serial_number || a.asset_id.slice(0, 8);
    db.append(el("tr", {"data-asset": a.asset_id},
      el("td", {}, linkButton(label, `Show asset ${label}`, () => openAsset(a.asset_id))),
      el("td", {text: a.org_unit_path || "—"}),
      el("td", {text: a.audited_at ? `${when(a.audited_at)} by ${a.audited_by}` : "Never"}),
      el("td", {text: day(a.next_audit_due) + (a.audit_overdue ? " (overdue)" : "")})));
  }
  say(`${overdue.items.length} overdue checkouts, ${due.items.length} audits due.`);
}

document.addEventListener("DOMContentLoaded", () => {
  TAB_LOADERS.reports = loadReports;
  $("reports-refresh").addEventListener("click", () => guarded(loadReports));
  $("auditsdue-before").addEventListener("change", () => guarded(loadReports));
});

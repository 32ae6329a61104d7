// Alerts: a banner for each thing an admin should act on (GET /v1/alerts): a held run, a
// failed run, a revoked connection, overdue checkouts. The same happenings are published on
// panel.sync.events (docs/events.md). Loaded after app.js, details.js and cloudsync.js.
"use strict";

const CLOUD_FULL = {google: "Google Workspace", azure: "Microsoft Entra ID"};

function alertText(a) {
  const cloud = CLOUD_FULL[a.cloud] || a.cloud;
  switch (a.kind) {
  case "run_held": return `A ${cloud} sync is held: ${a.count} removals wait for your review.`;
  case "run_failed": return `The last ${cloud} sync failed (${a.failure_reason || "error"}): nothing was removed.` +
                            (a.message ? ` ${a.message}` : "");
  case "connection_revoked": return `Panel's access to ${cloud} was revoked: no sync runs until it is authorized again.`;
  case "connection_scope_missing": return `${cloud} is connected without every permission Panel needs: authorize again.`;
  case "checkouts_overdue": return `${a.count} checkout${a.count === 1 ? " is" : "s are"} overdue.`;
  default: return a.kind;
  }
}

function alertAction(a) {
  if (a.kind === "run_held") return ["Review", () => { selectTab("sync", false); guarded(() => showRun(a.run_id)); }];
  if (a.kind === "checkouts_overdue") return ["Show overdue", () => selectTab("reports", true)];
  return ["Open Cloud Sync", () => selectTab("sync", true)];
}

async function loadAlerts() {
  const out = await api("GET", "/v1/alerts");
  const list = $("alerts-list");
  list.replaceChildren();
  for (const a of out.items) {
    const [label, go] = alertAction(a);
    list.append(el("li", {"data-alert": a.kind, class: "alert-" + a.kind},
      el("span", {text: alertText(a)}), " ",
      el("button", {type: "button", class: "link", text: label, "aria-label": `${label}: ${alertText(a)}`, onclick: go})));
  }
  $("alerts").hidden = !out.items.length;
}

SIGNED_IN_HOOKS.push(loadAlerts);
// Alerts change while the page stays open all day: look again every minute.
setInterval(() => { if (session) loadAlerts().catch(() => {}); }, 60000);

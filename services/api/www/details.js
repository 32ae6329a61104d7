// Readable details of a Person and an Asset: human labels in a set order, empty values
// hidden, dates in the district's time zone (GET /v1/session's time_zone) and the cloud each
// value came from. Used by app.js (People) and inventory.js (Assets); loaded after app.js.
"use strict";

// [field key, label, kind]; kind: text (default), list, bool, time, date, ms (epoch ms).
// Keys not listed here are shown after these under a label made from the key.
const PERSON_FIELDS = [
  ["display_name", "Name"], ["given_name", "First name"], ["family_name", "Last name"],
  ["email", "Email"], ["mail", "Mail (Microsoft)"], ["user_principal_name", "Sign-in name (Microsoft)"],
  ["aliases", "Other addresses (Google aliases)", "list"],
  ["proxy_addresses", "Other addresses (Microsoft proxy addresses)", "list"],
  ["other_mails", "Other email addresses", "list"],
  ["org_unit_path", "Org unit"], ["graduation_year", "Graduation year"],
  ["job_title", "Job title"], ["department", "Department"],
  ["office_location", "Office"], ["employee_id", "Employee ID"], ["user_type", "User type"],
  ["suspended", "Suspended", "bool"], ["archived", "Archived", "bool"],
  ["is_admin", "Google admin", "bool"], ["last_login_at", "Last sign-in to Google", "time"],
  ["created_at", "Account created", "time"], ["photo_url", "Photo"],
];

const ASSET_FIELDS = [
  ["serial_number", "Serial number"], ["model", "Model"], ["status", "Google status"],
  ["org_unit_path", "Org unit"], ["annotated_asset_id", "Asset ID in Google"],
  ["annotated_user", "Assigned user in Google"], ["annotated_location", "Location in Google"],
  ["notes", "Notes from Google"], ["mac_address", "Wi-Fi MAC address", "mac"],
  ["ethernet_mac_address", "Ethernet MAC address", "mac"], ["os_version", "ChromeOS version"],
  ["platform_version", "Platform version"], ["firmware_version", "Firmware version"],
  ["boot_mode", "Boot mode"], ["last_sync", "Last seen by Google", "time"],
  ["last_enrollment_time", "Enrolled", "time"],
  ["auto_update_through", "Auto-update expiry", "date"],
  ["auto_update_expiration_ms", "Auto-update expiry", "ms"],
  ["device_license_type", "License"], ["chrome_os_type", "ChromeOS type"],
];
// Internal keys never shown as fields (the page shows them in their own place).
const HIDDEN_KEYS = new Set(["recent_users", "recent_users_present", "device_id", "org_unit_id"]);

function districtZone() {
  return (session && session.time_zone) || "UTC";
}

// A timestamp in the district's time zone, e.g. "Mar 3, 2027, 8:05 AM".
function when(ts) {
  if (!ts) return "—";
  const d = new Date(ts);
  if (isNaN(d)) return String(ts);
  try {
    return d.toLocaleString("en-US", {timeZone: districtZone(), dateStyle: "medium", timeStyle: "short"});
  } catch (e) {
    return d.toLocaleString("en-US", {timeZone: "UTC", dateStyle: "medium", timeStyle: "short"}) + " UTC";
  }
}

// The district's wall time of an instant, as a datetime-local input holds it
// ("2030-12-20T08:00"); "" for no or a bad timestamp.
function zoneInputValue(ts) {
  const d = new Date(ts);
  if (!ts || isNaN(d)) return "";
  const f = new Intl.DateTimeFormat("en-CA", {timeZone: districtZone(), hourCycle: "h23", year: "numeric",
                                              month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit"});
  const p = Object.fromEntries(f.formatToParts(d).map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}`;
}

// The instant (ISO 8601, UTC) of a wall time typed in the district's time zone, whatever the
// browser's own zone is; "" for an empty or unreadable value.
function instantFromZoneInput(v) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})$/.exec(v || "");
  if (!m) return "";
  const wall = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]);
  // The zone's offset at an instant: its wall time read as if it were UTC, minus the instant.
  const offset = (t) => Date.parse(zoneInputValue(new Date(t).toISOString()) + ":00Z") - t;
  let t = wall - offset(wall);
  t = wall - offset(t); // once more, for a wall time on the other side of a DST change
  return new Date(t).toISOString();
}

// A calendar date (YYYY-MM-DD) is a day, not an instant: never shifted by a time zone.
function day(s) {
  if (!s) return "—";
  const d = new Date(String(s).slice(0, 10) + "T00:00:00Z");
  return isNaN(d) ? String(s) : d.toLocaleDateString("en-US", {timeZone: "UTC", dateStyle: "medium"});
}

function isEmpty(v) {
  if (v === null || v === undefined || v === "") return true;
  if (Array.isArray(v)) return v.length === 0;
  if (typeof v === "object") {
    if (Array.isArray(v.values)) return v.values.length === 0;
    return Object.keys(v).length === 0;
  }
  return false;
}

function labelFromKey(k) {
  const s = k.replace(/_/g, " ");
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function formatValue(v, kind) {
  if (kind === "bool" || typeof v === "boolean") return v ? "Yes" : "No";
  if (kind === "time") return when(v);
  if (kind === "date") return day(v);
  if (kind === "ms") return day(new Date(Number(v)).toISOString());
  if (kind === "mac") return String(v).replace(/[^0-9a-f]/gi, "").replace(/(..)(?!$)/g, "$1:").toUpperCase();
  // Lists arrive as {"values": [...]} (presence: an empty list is a value) or as arrays.
  const list = Array.isArray(v) ? v : (v && typeof v === "object" && Array.isArray(v.values) ? v.values : null);
  if (list) return list.map((x) => (typeof x === "object" ? JSON.stringify(x) : String(x))).join(", ");
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

const CLOUD_NAMES = {google: "Google", azure: "Microsoft", panel: "Panel"};

// A table of fields (label, value, cloud). fields: {key: value}; provenance: {key: cloud} or
// a cloud name for all of them. Keys in order come first in its order; empty values are left
// out; a key shown under an earlier alias (auto_update_through and _ms) is shown once.
function fieldTable(label, order, fields, provenance) {
  const table = el("table", {class: "grid fields", "aria-label": label},
    el("thead", {}, el("tr", {}, el("th", {scope: "col", text: "Field"}),
                          el("th", {scope: "col", text: "Value"}),
                          el("th", {scope: "col", text: "From"}))));
  const tb = el("tbody");
  const seen = new Set();
  const labels = new Set();
  const add = (k, lab, kind) => {
    seen.add(k);
    const v = fields[k];
    if (isEmpty(v) || labels.has(lab)) return;
    labels.add(lab);
    const src = typeof provenance === "string" ? provenance : (provenance || {})[k];
    tb.append(el("tr", {"data-field": k}, el("th", {scope: "row", text: lab}),
                 el("td", {text: formatValue(v, kind)}),
                 el("td", {text: CLOUD_NAMES[src] || "—"})));
  };
  for (const [k, lab, kind] of order) if (k in fields) add(k, lab, kind);
  for (const k of Object.keys(fields).sort()) if (!seen.has(k) && !HIDDEN_KEYS.has(k)) add(k, labelFromKey(k));
  table.append(tb);
  return table;
}

// A Person's fields, every address and where each value came from.
function personDetails(p) {
  return fieldTable("Fields and the cloud each came from", PERSON_FIELDS, p.fields || {}, p.provenance);
}

// A Chromebook's Google fields (the device as Google last reported it).
function assetGoogleDetails(a) {
  const dev = Object.assign({}, a.device || {});
  if (a.google_status && !dev.status) dev.status = a.google_status;
  return fieldTable("Fields from Google", ASSET_FIELDS, dev, a.manual ? "panel" : "google");
}

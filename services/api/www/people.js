// People: the org-unit tree to browse (a click filters the list to that org unit and
// below) and, on a Person's page, their devices: what is checked out to them and the
// Chromebooks Google says they used last. Loaded after app.js, details.js, inventory.js.
"use strict";

function ouNode(o) {
  // Plain nested lists of buttons: Tab reaches each org unit (a role="tree" would promise
  // arrow-key navigation).
  const li = el("li");
  li.append(el("button", {type: "button", class: "link", text: o.name || o.path,
                          "aria-label": `People in ${o.path} and below`,
                          onclick: () => {
                            $("people-ou").value = o.path;
                            guarded(() => people.load(true));
                          }}));
  if (o.children.length) li.append(el("ul", {}, ...o.children.map(ouNode)));
  return li;
}

async function loadOuTree() {
  const out = await api("GET", "/v1/org-units?format=tree");
  const tree = $("ou-tree");
  tree.replaceChildren(...out.items.map(ouNode));
  $("ou-tree-box").hidden = !out.items.length;
}

// The Person's devices: open checkouts (theirs) and Chromebooks whose last user is them.
async function personDevices(p) {
  const found = await api("GET", "/v1/assets" + qs({q: p.email, limit: 50}));
  const mine = found.items.filter((a) => {
    const out = a.current_checkout && a.current_checkout.person_id === p.person_id;
    const users = recentUsers(a);
    return out || (users.length && users[0].email.toLowerCase() === p.email.toLowerCase());
  });
  const box = el("div", {id: "person-devices"}, el("h4", {text: "Devices"}));
  if (!mine.length) {
    box.append(el("p", {text: "None checked out and none last used."}));
    return box;
  }
  const ul = el("ul");
  for (const a of mine) {
    const label = a.asset_tag || a.serial_number || a.asset_id.slice(0, 8);
    const users = recentUsers(a);
    const out = a.current_checkout && a.current_checkout.person_id === p.person_id;
    const last = users.length ? users[0].email : null;
    let text = `${a.model || "Asset"} — ` + (out ? "checked out to them" : `checked out to ${a.current_checkout ? a.current_checkout.person_name : "nobody"}`);
    if (last) text += last.toLowerCase() === p.email.toLowerCase() ? "; they used it last" : `; last used by ${last}`;
    ul.append(el("li", {}, linkButton(label, `Show asset ${label}`, () => { selectTab("assets", false); guarded(() => showAsset(a.asset_id)); }),
                 " " + text));
  }
  box.append(ul);
  return box;
}

document.addEventListener("DOMContentLoaded", () => {
  TAB_LOADERS.people = loadOuTree;
});

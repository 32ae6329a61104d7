// Cart: scan Assets in (a barcode scanner is a keyboard that types the code and Enter), see
// each line's state, then check the whole cart out to one Person or check it all in with one
// condition. All or nothing: the bulk API changes every line or none and says which line
// failed. Loaded after app.js.
"use strict";

const CART_MAX = 100; // the bulk API's limit per request
const CART_STATES = {
  looking: "Looking up…", available: "Available", out: "Already checked out",
  retired: "Retired", not_found: "Not found", ambiguous: "Several Assets have this serial",
  done_out: "Checked out", done_in: "Checked in",
};

const cart = {
  lines: [], // {code, state, asset, error}
  queue: Promise.resolve(), // scans are looked up in the order they were made

  mode() {
    return document.querySelector('input[name="cart-mode"]:checked').value; // checkout|checkin
  },

  // A line is ready when the chosen action can apply to it.
  ready(line) {
    return this.mode() === "checkout" ? line.state === "available" : line.state === "out";
  },

  scan(raw) {
    const code = raw.trim();
    if (!code) return;
    if (this.lines.some((l) => l.code.toLowerCase() === code.toLowerCase())) {
      say(`${code} is already in the cart.`);
      return;
    }
    if (this.lines.length >= CART_MAX) {
      showError(`A cart holds at most ${CART_MAX} Assets: check this one out in the next cart.`);
      return;
    }
    const line = {code, state: "looking", asset: null, error: null};
    this.lines.push(line);
    this.render();
    this.queue = this.queue.then(() => this.lookUp(line)).catch(showError).then(() => this.render());
  },

  // By asset tag first, then by serial number (lists answer 200 with no match, so an
  // unknown code is not an HTTP error).
  async lookUp(line) {
    let found = await api("GET", "/v1/assets" + qs({asset_tag: line.code, limit: 2}));
    if (!found.items.length) found = await api("GET", "/v1/assets" + qs({serial: line.code, limit: 2}));
    if (found.items.length > 1) {
      line.state = "ambiguous";
      return;
    }
    const asset = found.items[0] || null;
    line.asset = asset;
    line.state = !asset ? "not_found" : asset.lifecycle === "retired" ? "retired"
               : asset.current_checkout ? "out" : "available";
  },

  stateText(line) {
    let t = CART_STATES[line.state] || line.state;
    const c = line.asset && line.asset.current_checkout;
    if ((line.state === "out" || line.state === "done_out") && c) t += ` to ${c.person_name || c.person_id}`;
    if (line.error) t += ` — ${line.error}`;
    return t;
  },

  render() {
    const body = $("cart-lines");
    body.replaceChildren();
    if (!this.lines.length) body.append(el("tr", {}, el("td", {colspan: 5, text: "The cart is empty: scan an asset tag or serial number."})));
    this.lines.forEach((l, i) => {
      const a = l.asset;
      const bad = !l.state.startsWith("done") && l.state !== "looking" && !this.ready(l);
      body.append(el("tr", {"data-code": l.code, "data-state": l.state, class: bad || l.error ? "bad" : null},
        el("td", {text: String(i + 1)}), el("td", {text: l.code}),
        el("td", {text: a ? `${a.model || "Asset"} ${a.serial_number || ""}`.trim() + (a.asset_tag ? ` (tag ${a.asset_tag})` : "") : "—"}),
        el("td", {class: "cart-state", text: this.stateText(l)}),
        el("td", {}, el("button", {type: "button", text: "Remove", "aria-label": `Remove ${l.code} from the cart`,
                                   onclick: () => { this.lines.splice(i, 1); this.render(); $("cart-scan").focus(); }}))));
    });
    const ready = this.lines.filter((l) => this.ready(l)).length;
    $("cart-count").textContent = `${this.lines.length} in the cart, ${ready} ready to ` +
      (this.mode() === "checkout" ? "check out." : "check in.");
    $("cart-checkout-fields").hidden = this.mode() !== "checkout";
    $("cart-checkin-fields").hidden = this.mode() !== "checkin";
    $("cart-submit").textContent = this.mode() === "checkout" ? `Check out ${this.lines.length} Assets` : `Check in ${this.lines.length} Assets`;
  },

  async findPeople() {
    const q = $("cart-person-q").value.trim();
    if (q.length < 2) {
      showError("Type at least two letters of a name or email to find a Person.");
      return;
    }
    const out = await api("GET", "/v1/people" + qs({q, status: "active", limit: 20}));
    const sel = $("cart-person");
    sel.replaceChildren(el("option", {value: "", text: out.items.length ? "Choose a Person" : "No match"}));
    for (const p of out.items) sel.append(el("option", {value: p.person_id, text: `${p.display_name} <${p.email}>`}));
    if (out.items.length === 1) sel.value = out.items[0].person_id;
    say(`${out.items.length} matching People.`);
    sel.focus();
  },

  async submit() {
    await this.queue;
    const checkout = this.mode() === "checkout";
    for (const l of this.lines) l.error = null;
    if (!this.lines.length) throw new Error("The cart is empty.");
    const notReady = this.lines.filter((l) => !this.ready(l));
    if (notReady.length) {
      this.render();
      throw new Error(`Nothing was changed: ${notReady.length} line(s) cannot be ` +
        (checkout ? "checked out" : "checked in") + ": " +
        notReady.map((l) => `${l.code} (${this.stateText(l)})`).join("; ") + ". Remove them or fix them first.");
    }
    let items, person = null;
    if (checkout) {
      const sel = $("cart-person");
      if (!sel.value) {
        $("cart-person-q").focus();
        throw new Error("Choose the Person the cart goes to first.");
      }
      person = sel.options[sel.selectedIndex].text;
      const due = $("cart-due").value, note = $("cart-note").value.trim();
      items = this.lines.map((l) => Object.assign({asset_id: l.asset.asset_id, person_id: sel.value},
                                                   due ? {due_at: due} : {}, note ? {note} : {}));
    } else {
      const cond = $("cart-condition").value.trim(), note = $("cart-ci-note").value.trim();
      items = this.lines.map((l) => Object.assign({asset_id: l.asset.asset_id}, cond ? {condition: cond} : {},
                                                   note ? {note} : {}));
    }
    try {
      const out = await api("POST", checkout ? "/v1/checkouts/bulk" : "/v1/checkins/bulk", {items});
      out.items.forEach((c, i) => {
        const l = this.lines[i];
        l.state = checkout ? "done_out" : "done_in";
        if (l.asset) l.asset.current_checkout = checkout ? c : null;
      });
      this.render();
      say(`${items.length} Assets ` + (checkout ? `checked out to ${person}.` : "checked in."));
    } catch (e) {
      // All or nothing: the reply names each failed line.
      if (e instanceof ApiError && e.items) {
        for (const it of e.items) if (it.status !== 200 && this.lines[it.index]) this.lines[it.index].error = it.message;
        this.render();
      }
      throw e;
    }
  },

  clear() {
    this.lines = [];
    this.render();
    say("Cart emptied.");
    $("cart-scan").focus();
  },
};

document.addEventListener("DOMContentLoaded", () => {
  const scan = $("cart-scan");
  // A scanner types the code then Enter; a person may type and press Enter the same way.
  scan.addEventListener("keydown", (ev) => {
    if (ev.key !== "Enter") return;
    ev.preventDefault();
    clearError();
    cart.scan(scan.value);
    scan.value = "";
  });
  for (const r of document.querySelectorAll('input[name="cart-mode"]')) r.addEventListener("change", () => cart.render());
  $("cart-find").addEventListener("click", () => guarded(() => cart.findPeople()));
  $("cart-person-q").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") { ev.preventDefault(); guarded(() => cart.findPeople()); }
  });
  $("cart-form").addEventListener("submit", (ev) => { ev.preventDefault(); guarded(() => cart.submit()); });
  $("cart-clear").addEventListener("click", () => cart.clear());
  TAB_LOADERS.cart = async () => cart.render();
});

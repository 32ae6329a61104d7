// The admin page against the whole suite on the emulator (issues 9, 17): sign in with Google
// through auth's /signin and the emulator's account picker; authorize Google through the
// emulator's consent page and see the first sync's People; request an immediate sync and see
// the run appear; check an Asset out and in; sign out; sign in with Microsoft and connect
// Microsoft (its admin consent page). Phase "viewer": a viewer signs in and can change
// nothing (no change controls; a change sent with the viewer's cookie and CSRF token is
// 403). Phase "held": review a held run's removals and approve it. Phase "cart": scan 30
// Chromebooks into the cart and check them out to one Person. Phase "match-notes-csv":
// resolve the match case the merger opened (choose the Person), write a Chromebook's Panel
// notes, download every Person and every Asset as CSV into fx.download_dir (the test parses
// them). Phase "revoked" (after the test revoked the grant at the emulator): request a sync
// and see the page say "revoked". Run by tests/e2e/test_browser_suite.py; FIXTURE (JSON)
// gives the URLs and names. Exits non-zero on a failed step or on any unexpected console
// error; screenshots go to SHOTS.
import fs from "node:fs";
import path from "node:path";
import {checkIn, checkOut, launch, openAsset, runSteps} from "./helpers.mjs";

const fx = JSON.parse(process.env.FIXTURE);
const shots = process.env.SHOTS;
const phase = process.env.PHASE; // "connect", "viewer", "held", "cart", "match-notes-csv" or "revoked"
fs.mkdirSync(shots, {recursive: true});
const errors = [];
const browser = await launch(["--disable-gpu", "--disable-background-networking",
                              "--disable-component-update", "--disable-sync", "--no-first-run"]);
let page = null;
// Refusals the steps provoke on purpose: the sign-in screen's "who am I?" before signing in,
// and the viewer's change.
let viewerChange = false;
const expected = (status, url) =>
  (status === 401 && url.endsWith("/v1/session")) ||
  (viewerChange && status === 403 && url.endsWith("/v1/sync"));
await runSteps(browser, errors, async () => {
  const context = await browser.newContext({viewport: {width: 1280, height: 900}, acceptDownloads: true});
  page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    const st = /status of (\d+)/.exec(m.text());
    if (st && expected(Number(st[1]), (m.location() && m.location().url) || "")) return;
    errors.push(m.text());
  });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("response", (r) => {
    if (r.status() >= 400 && !expected(r.status(), r.url())) errors.push(`HTTP ${r.status()} ${r.url()}`);
  });
  page.setDefaultTimeout(20000);
  const shot = (name) => page.screenshot({path: path.join(shots, name + ".png"), fullPage: true});
  const step = (name) => console.log("step: " + name);

  // What a person does: "Sign in with ..." on the page, pick the account on the provider's
  // (the emulator's) account picker, land back on the page signed in.
  const signIn = async (provider, email, role) => {
    await page.goto(fx.url + "/?tenant=" + encodeURIComponent(fx.tenant));
    const button = page.locator("#signin-" + provider);
    await button.waitFor();
    await Promise.all([page.waitForURL(/\/(o\/oauth2\/v2\/auth|organizations\/oauth2\/v2\.0\/authorize)/),
                       button.click()]);
    const home = (u) => u.href.startsWith(fx.url + "/");
    for (let i = 0; i < 4 && !home(new URL(page.url())); i++) {
      await shot(`suite-signin-${provider}-${role}-${i}`);
      const account = page.getByRole("link", {name: email, exact: true});
      if (await account.count()) { // the provider's account picker
        const picker = page.url();
        await Promise.all([page.waitForURL((u) => u.href !== picker), account.click()]);
        continue;
      }
      if (await page.getByText(email, {exact: true}).count() === 0) {
        // The emulator picked its district's default account: "use another account".
        await page.goto(page.url() + "&" + new URLSearchParams({login_hint: email}));
        continue;
      }
      await Promise.all([page.waitForURL(home), page.getByRole("button", {name: "Allow"}).click()]);
    }
    await page.locator("#whoami").filter({hasText: `${email} (${role})`}).waitFor();
  };

  if (phase === "connect") {
    step("sign in with Google as the district admin");
    await signIn("google", fx.admin, "admin");

    step("authorize Google: read-only confirmation, the emulator's consent page, back");
    await page.locator("#conn-google-authorize").click();
    await page.getByRole("dialog").getByText("read-only access").waitFor();
    await shot("suite-01-confirm");
    await Promise.all([page.waitForURL(/\/o\/oauth2\/v2\/auth/),
                       page.getByRole("button", {name: "Continue to consent"}).click()]);
    await shot("suite-02-google-consent");
    await Promise.all([page.waitForURL(/#cloud-sync/), page.locator("#allow").click()]);
    await page.locator("#conn-google-status").filter({hasText: "Connected"}).waitFor();
    await shot("suite-03-connected");

    step("the first sync's People appear");
    await page.getByRole("tab", {name: "People"}).click();
    // The first sync runs in the background: search again until the Person is there.
    const found = page.getByRole("button", {name: "Show " + fx.person_name});
    for (let i = 0; i < 60 && await found.count() === 0; i++) {
      await page.getByLabel("Search name or email").fill(fx.person_query);
      await page.getByLabel("Search name or email").press("Enter");
      await page.waitForTimeout(2000);
    }
    await found.waitFor();
    await shot("suite-04-people");

    step("request an immediate sync and see the run appear");
    await page.getByRole("tab", {name: "Cloud Sync"}).click();
    await page.locator("#conn-google-sync").click();
    await page.locator("#status").filter({hasText: "Sync requested for Google Workspace"}).waitFor();
    await shot("suite-05-sync-requested");

    step("check an Asset out and in");
    await page.getByRole("tab", {name: "Assets"}).click();
    await openAsset(page, fx.serial);
    await checkOut(page, fx.person_query, fx.person_name);
    await shot("suite-06-checked-out");
    await checkIn(page, "good");
    await page.locator("#asset .history li").filter({hasText: "(good)"}).waitFor();
    await shot("suite-07-checked-in");

    step("sign out");
    await page.locator("#signout").click();
    await page.locator("#signin-microsoft").waitFor();
    await shot("suite-08-signed-out");

    step("sign in with Microsoft and connect Microsoft (its directory is the admin's own)");
    await signIn("microsoft", fx.admin, "admin");
    await page.locator("#conn-azure-authorize").click();
    await Promise.all([page.waitForURL(/\/v2\.0\/adminconsent/),
                       page.getByRole("button", {name: "Continue to consent"}).click()]);
    await shot("suite-09-microsoft-consent");
    await Promise.all([page.waitForURL(/#cloud-sync/), page.locator("#allow").click()]);
    await page.locator("#conn-azure-status").filter({hasText: "Connected"}).waitFor();
    await shot("suite-10-microsoft-connected");
  } else if (phase === "viewer") {
    step("a viewer signs in and can change nothing");
    await signIn("google", fx.viewer, "viewer");
    await page.locator("#viewer-note").waitFor();
    await page.locator("#conn-google-status").waitFor();
    await page.locator("#conn-azure-status").waitFor();
    const controls = await page.locator("#connections button").count();
    if (controls !== 0) throw new Error(`the viewer sees ${controls} change control(s)`);
    await shot("suite-11-viewer");
    viewerChange = true;
    const refused = await page.evaluate(async () => {
      const s = await (await fetch("/v1/session", {credentials: "same-origin"})).json();
      const r = await fetch("/v1/sync", {
        method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRF-Token": s.csrf_token},
        body: JSON.stringify({provider: "google"})});
      return {status: r.status, body: await r.json()};
    });
    viewerChange = false;
    if (refused.status !== 403 || refused.body.error.code !== "forbidden")
      throw new Error("the viewer's change was not refused: " + JSON.stringify(refused));
    console.log("viewer change refused: " + refused.status + " " + refused.body.error.code);
  } else if (phase === "revoked") {
    step("sign in with Google as the district admin");
    await signIn("google", fx.admin, "admin");
    step("after revocation at Google, a requested sync shows the connection revoked");
    await page.locator("#conn-google-sync").click();
    // The grant is checked with Google when the run asks for a token; reload until the
    // page shows what auth recorded.
    let seen = false;
    for (let i = 0; i < 45 && !seen; i++) {
      await page.waitForTimeout(2000);
      await page.reload();
      seen = await page.locator("#conn-google-status").filter({hasText: "Revoked"}).count() > 0;
    }
    if (!seen) throw new Error("the page never showed Google as revoked");
    await shot("suite-12-revoked");
  }

  if (phase === "held") {
    // The test removed a few Google users at the emulator with a low deletion threshold and
    // the next sync was held by the merger: review what it would remove, then approve.
    page.on("dialog", (d) => d.accept());
    step("sign in with Google as the district admin");
    await signIn("google", fx.admin, "admin");
    step("a held run: review the People it would remove, approve");
    await page.locator(`tr[data-run="${fx.held_run}"]`).getByRole("button", {name: /^Review held google run/}).click();
    for (const name of fx.removed_names)
      await page.locator('#removals tr[data-kind="person"]').filter({hasText: name}).waitFor();
    await page.locator("#removals-title").filter({hasText: `removes ${fx.removed_names.length} People`}).waitFor();
    await shot("suite-13-held-run");
    await page.getByRole("button", {name: /^Approve held google run/}).click();
    await page.locator("#status").filter({hasText: "Run approved"}).waitFor();
  }

  if (phase === "cart") {
    step("sign in with Google as the district admin");
    await signIn("google", fx.admin, "admin");
    step("cart: scan 30 synced Chromebooks by serial, check them out to one Person");
    await page.getByRole("tab", {name: "Cart"}).click();
    const scan = page.getByLabel("Scan or type an asset tag or serial, then Enter");
    for (const serial of fx.cart_serials) {
      await scan.pressSequentially(serial, {delay: 0});
      await scan.press("Enter");
    }
    const n = fx.cart_serials.length;
    // 30 look-ups one after the other (scan order): more than the default wait on a busy machine.
    await page.locator("#cart-count").filter({hasText: `${n} in the cart, ${n} ready to check out`}).waitFor({timeout: 90000});
    await page.getByLabel("Find the Person (name or email)").fill(fx.person_query);
    await page.getByLabel("Find the Person (name or email)").press("Enter");
    const option = page.locator("#cart-person option").filter({hasText: fx.person_name});
    await option.waitFor({state: "attached"});
    await page.getByLabel("Person", {exact: true}).selectOption(await option.getAttribute("value"));
    await page.locator("#cart-submit").filter({hasText: `Check out ${n} Assets`}).click();
    await page.locator("#status").filter({hasText: `${n} Assets checked out to ${fx.person_name}`}).waitFor();
    await shot("suite-14-cart");
  }
  if (phase === "match-notes-csv") {
    step("sign in with Google as the district admin");
    await signIn("google", fx.admin, "admin");
    step("a match case the merger opened: choose who it is, resolve");
    await page.getByRole("tab", {name: "Cloud Sync"}).click();
    const kase = page.locator(`tr[data-case="${fx.match_case}"]`);
    await kase.filter({hasText: fx.case_email}).waitFor();
    const escaped = fx.pick_email.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    await kase.getByLabel(new RegExp(`<${escaped}>`)).check();
    await shot("suite-15-match-case");
    await kase.getByRole("button", {name: /^Resolve/}).click();
    await page.locator("#status").filter({hasText: "Match case of"}).waitFor();
    await kase.waitFor({state: "detached"});

    step("a Chromebook's own notes in Panel (Google's notes stay Google's)");
    await page.getByRole("tab", {name: "Assets"}).click();
    await openAsset(page, fx.serial);
    await page.getByLabel("Notes (Panel)").fill(fx.panel_notes);
    await page.getByRole("button", {name: "Save changes"}).click();
    await page.locator("#status").filter({hasText: "Asset saved."}).waitFor();
    await page.locator("#asset dd").filter({hasText: fx.panel_notes}).waitFor();
    await shot("suite-16-panel-notes");

    step("download every Asset and every Person as CSV");
    for (const [tab, link, file] of [["Assets", "Download every Asset (CSV)", "assets.csv"],
                                     ["People", "Download every Person (CSV)", "people.csv"]]) {
      await page.getByRole("tab", {name: tab}).click();
      const [download] = await Promise.all([page.waitForEvent("download"),
                                            page.getByRole("link", {name: link}).click()]);
      if (!download.suggestedFilename().endsWith(file)) throw new Error("download named " + download.suggestedFilename());
      await download.saveAs(path.join(fx.download_dir, file));
    }
  }
}, async (e) => {
  console.error("FAILED: " + e.message + (page ? " (at " + page.url() + ")" : ""));
  if (page) {
    await page.screenshot({path: path.join(shots, `suite-failed-${phase}.png`), fullPage: true}).catch(() => {});
    console.error("page text: " + (await page.locator("main").innerText().catch(() => "")).slice(0, 3000));
  }
});

// Drives the admin page in Debian's headless Chromium with playwright-core. Run by
// tests/e2e/test_api_browser.py, which starts panel-api (with auth/merger stubs), loads the
// data and inserts signed-in sessions as auth's sign-in makes them; FIXTURE (JSON) says what
// to look for and carries the session cookies (set in the browser context, as the sign-in's
// redirect would). Exits non-zero on a failed step or on any console error; screenshots go
// to SHOTS.
import fs from "node:fs";
import path from "node:path";
import {checkIn, checkOut, launch, openAsset, runSteps} from "./helpers.mjs";

const fx = JSON.parse(process.env.FIXTURE);
const shots = process.env.SHOTS;
fs.mkdirSync(shots, {recursive: true});
const errors = [];
const browser = await launch();
await runSteps(browser, errors, async () => {
  // A browser context per person; session is the panel_session cookie or null.
  const open = async (session, expect401) => {
    // A browser far from the district (America/Chicago in the fixture): times the page reads
    // or takes must be the district's, never the browser's own zone.
    const context = await browser.newContext({viewport: {width: 1280, height: 900}, timezoneId: "Asia/Tokyo"});
    if (session) await context.addCookies([{name: "panel_session", value: session, url: fx.url}]);
    const p = await context.newPage();
    // A signed-out page's GET /v1/session is answered 401 on purpose.
    p.expect401 = expect401;
    p.on("console", (m) => {
      if (m.type() === "error" && !(p.expect401 && /status of 401/.test(m.text()))) errors.push(m.text());
    });
    p.on("pageerror", (e) => errors.push(String(e)));
    p.on("dialog", (d) => d.accept());
    p.setDefaultTimeout(10000);
    return p;
  };
  const step = (name) => console.log("step: " + name);

  step("signed out: the sign-in screen links to auth's sign-in, never asks for a key");
  const out = await open(null, true);
  await out.goto(fx.url + "/?tenant=" + fx.tenant + "#signin?error=not_invited&message=" +
                 encodeURIComponent(fx.email_other + " is not a Panel admin of any district"));
  const google = out.getByRole("link", {name: "Sign in with Google"});
  await google.waitFor();
  if (await google.getAttribute("href") !== fx.auth_public + "/signin/google?tenant=" + fx.tenant)
    throw new Error("Google sign-in link: " + await google.getAttribute("href"));
  const ms = out.getByRole("link", {name: "Sign in with Microsoft"});
  if (await ms.getAttribute("href") !== fx.auth_public + "/signin/microsoft?tenant=" + fx.tenant)
    throw new Error("Microsoft sign-in link: " + await ms.getAttribute("href"));
  await out.locator("#alert").filter({hasText: fx.email_other + " is not a Panel admin"}).waitFor();
  if (await out.locator("input[type=password]").count()) throw new Error("the page asks for a key");
  if (!(await out.locator("#app").isHidden())) throw new Error("the app shows without a session");
  await out.screenshot({path: path.join(shots, "00-sign-in.png"), fullPage: true});

  const page = await open(fx.session, false);
  const shot = (name) => page.screenshot({path: path.join(shots, name + ".png"), fullPage: true});
  step("signed in: who, role and district");
  await page.goto(fx.url + "/");
  await page.locator("#whoami").filter({hasText: fx.email}).filter({hasText: "admin"})
    .filter({hasText: fx.tenant_name}).waitFor();
  await page.getByRole("button", {name: "Sign out"}).waitFor();
  await page.locator("#conn-google-status").filter({hasText: "Connected."}).waitFor();
  await page.locator("#conn-azure-status").filter({hasText: "Revoked"}).waitFor();
  await page.getByText("Google Workspace is applied first").waitFor();
  step("alerts: banners for the held runs and the revoked connection");
  await page.locator('#alerts li[data-alert="run_held"]').filter({hasText: "removals wait for your review"}).first().waitFor();
  await page.locator('#alerts li[data-alert="connection_revoked"]').filter({hasText: "Microsoft Entra ID was revoked"}).waitFor();
  await page.getByRole("button", {name: "Authorize Panel to Perform Google Workspace Sync"}).waitFor();
  await shot("01-cloud-sync");

  step("request an immediate sync");
  await page.locator("#conn-google-sync").click();
  await page.locator("#status").filter({hasText: "Sync requested for Google Workspace"}).waitFor();

  step("review the held run: who and what it would remove, then approve");
  await page.locator(`tr[data-run="${fx.held_run}"]`).getByRole("button", {name: /^Review held google run/}).click();
  const removals = page.locator("#removals");
  await removals.locator('tr[data-kind="person"]').filter({hasText: fx.leaver_name}).filter({hasText: fx.leaver_ou}).waitFor();
  await removals.locator('tr[data-kind="device"]').filter({hasText: fx.serial}).waitFor();
  await page.locator("#removals-title").filter({hasText: "removes 1 People, 1 Chromebooks"}).waitFor();
  await shot("02-held-run-review");
  if (fx.doc_shots) await page.screenshot({path: fx.doc_shots + "/held-run.png", fullPage: true});
  await page.getByRole("button", {name: /^Approve held google run/}).click();
  await page.locator("#status").filter({hasText: "Run approved"}).waitFor();
  await page.locator(`tr[data-run="${fx.held_run}"]`).filter({hasText: "approved"}).waitFor();
  await page.locator("#run-counts").filter({hasText: "approved by person:" + fx.email}).waitFor();

  step("a preview run's report and the objects that need attention");
  await page.getByRole("button", {name: /^Details of google run/}).first().waitFor();
  await page.locator(`tr[data-run="${fx.preview_run}"]`).getByRole("button", {name: /^Details of/}).click();
  await page.locator("#run-report").filter({hasText: "Would create"}).filter({hasText: "12"}).waitFor();
  await page.locator('#attention tr[data-outcome="invalid"]').filter({hasText: "Dead-lettered"}).filter({hasText: fx.dead_serial}).waitFor();
  await page.locator('#attention tr[data-outcome="skipped"]').filter({hasText: "no email address"}).waitFor();
  await page.getByRole("button", {name: "Preview a Google sync"}).click();
  await page.locator("#status").filter({hasText: "Preview run requested for Google"}).waitFor();

  step("resolve a match case");
  const kase = page.locator(`tr[data-case="${fx.match_case}"]`);
  await kase.filter({hasText: fx.case_email}).waitFor();
  await kase.getByRole("button", {name: /^Resolve/}).click();
  await page.locator("#alert").filter({hasText: "Choose who"}).waitFor();
  await kase.getByLabel(new RegExp(fx.person_name)).check();
  await kase.getByRole("button", {name: /^Resolve/}).click();
  await page.locator("#status").filter({hasText: "Match case of"}).waitFor();
  await kase.waitFor({state: "detached"});

  step("sync settings: validation, then save");
  await page.getByLabel("Hold a run removing more than (objects)").fill("250");
  await page.getByLabel("or more than this percent of a cloud").fill("5");
  await page.getByRole("button", {name: "Add a pause window"}).click();
  await page.getByLabel("Pause 1 starts").fill("2030-12-20T08:00");
  await page.getByLabel("Pause 1 ends").fill("2030-12-19T08:00");
  await page.getByLabel("Pause 1 reason").fill("winter break");
  await page.getByRole("button", {name: "Save settings"}).click();
  await page.locator("#alert").filter({hasText: "Pause 1: it must end after it starts"}).waitFor();
  await page.getByLabel("Pause 1 ends").fill("2031-01-05T08:00");
  await page.getByRole("button", {name: "Save settings"}).click();
  await page.locator("#status").filter({hasText: "Sync settings saved"}).waitFor();
  // Read back after the save: the same wall times, in the district's zone.
  for (const [label, want] of [["Pause 1 starts", "2030-12-20T08:00"], ["Pause 1 ends", "2031-01-05T08:00"]]) {
    const got = await page.getByLabel(label).inputValue();
    if (got !== want) throw new Error(`${label} reads ${got} after saving ${want}`);
  }
  await page.locator("#pw-zone").filter({hasText: "America/Chicago"}).waitFor();
  await shot("02b-cloud-sync-settings");
  if (fx.doc_shots) await page.screenshot({path: fx.doc_shots + "/cloud-sync.png", fullPage: true});

  step("authorize Google: read-only confirmation, consent, back to the page");
  await page.locator("#conn-google-authorize").click();
  await page.getByRole("dialog").getByText("read-only access").waitFor();
  if (await page.getByRole("dialog").locator("input").count())
    throw new Error("Authorize asks for an email: the signed-in person is the actor");
  await shot("03-authorize-confirm");
  await Promise.all([page.waitForURL(/#cloud-sync/), page.getByRole("button", {name: "Continue to consent"}).click()]);
  await page.locator("#status").filter({hasText: "Google Workspace connected"}).waitFor();

  step("keyboard: arrows move between tabs");
  await page.locator("#tab-sync").focus();
  await page.keyboard.press("ArrowRight");
  await page.locator('#tab-people[aria-selected="true"]').waitFor();
  await page.locator("#panel-people").waitFor({state: "visible"});

  step("people: search and per-field source");
  await page.getByLabel("Search name or email").fill(fx.person_query);
  await page.getByLabel("Search name or email").press("Enter");
  await page.getByRole("button", {name: "Show " + fx.person_name}).click();
  const row = page.locator("#person tr").filter({hasText: "Job title"});
  await row.filter({hasText: "Microsoft"}).waitFor();
  await page.locator("#person tr").filter({hasText: "Org unit"}).filter({hasText: "Google"}).waitFor();
  await shot("04-person");

  step("assets: find by serial, check out with search-as-you-type, check in");
  await page.getByRole("tab", {name: "Assets"}).click();
  await openAsset(page, fx.serial);
  await checkOut(page, fx.kid_query, fx.kid_name, "2030-06-30");
  await shot("05-checked-out");
  await checkIn(page, "good");
  await page.locator("#checkout-form").waitFor();
  await page.locator("#asset .history li").filter({hasText: "(good)"}).waitFor();
  await shot("06-checked-in");

  step("admins: invite a person, make them admin, remove them");
  await page.getByRole("tab", {name: "Admins"}).click();
  await page.locator("#admins tr").filter({hasText: fx.email}).waitFor();
  await page.getByLabel("Email", {exact: true}).fill(fx.invitee);
  await page.getByLabel("Role", {exact: true}).selectOption("viewer");
  await page.getByRole("button", {name: "Invite"}).click();
  const invited = page.locator("#admins tr").filter({hasText: fx.invitee});
  await invited.filter({hasText: "viewer"}).waitFor();
  await page.getByRole("button", {name: `Make ${fx.invitee} admin`}).click();
  await invited.filter({hasText: "admin"}).getByRole("button", {name: `Make ${fx.invitee} viewer`}).waitFor();
  await shot("07-admins");
  await page.getByRole("button", {name: `Remove ${fx.invitee}`}).click();
  await invited.waitFor({state: "detached"});
  await page.locator("#status").filter({hasText: fx.invitee + " removed"}).waitFor();

  step("a viewer sees everything and no change controls");
  const viewer = await open(fx.viewer_session, false);
  await viewer.goto(fx.url + "/");
  await viewer.locator("#whoami").filter({hasText: "viewer"}).waitFor();
  await viewer.locator("#viewer-note").waitFor();
  await viewer.locator("#conn-google-status").filter({hasText: "Connected."}).waitFor();
  await viewer.locator(`tr[data-run="${fx.held_run}"]`).waitFor();
  for (const sel of ["#conn-google-authorize", "#conn-google-deauthorize", "#conn-google-sync",
                     "#conn-azure-authorize"])
    if (await viewer.locator(sel).count()) throw new Error("a viewer sees " + sel);
  if (await viewer.getByRole("button", {name: /^(Approve|Reject) held/}).count())
    throw new Error("a viewer sees Approve/Reject");
  await viewer.locator(`tr[data-run="${fx.held_run2}"]`).getByRole("button", {name: /^Review held google run/}).click();
  await viewer.locator("#removals").waitFor();
  if (await viewer.getByRole("button", {name: /^(Approve|Reject) held|^Resolve|^Save settings|^Preview/}).count())
    throw new Error("a viewer sees a change control of Cloud Sync");
  await viewer.getByRole("tab", {name: "Assets"}).click();
  await openAsset(viewer, fx.serial);
  await viewer.locator("#asset .history").waitFor();
  if (await viewer.locator("#checkout-form, #checkin-form").count())
    throw new Error("a viewer sees the checkout form");
  await viewer.getByRole("tab", {name: "Admins"}).click();
  await viewer.locator("#admins tr").filter({hasText: fx.email}).waitFor();
  if (!(await viewer.locator("#admin-form").isHidden())) throw new Error("a viewer can invite");
  if (await viewer.locator("#admins button").count()) throw new Error("a viewer sees admin buttons");
  await viewer.screenshot({path: path.join(shots, "08-viewer.png"), fullPage: true});

  step("sign out: back to the sign-in screen");
  page.expect401 = true;
  await page.getByRole("button", {name: "Sign out"}).click();
  await page.getByRole("link", {name: "Sign in with Google"}).waitFor();
  if (!(await page.locator("#app").isHidden())) throw new Error("the app still shows");
});

// The admin page against the whole suite on the cloud emulator (tests/e2e/
// test_api_browser_suite.py starts it): authorize Google through the emulator's consent page
// and see the first sync's results; request an immediate sync and see the run appear; revoke
// at the emulator and see the page say revoked; check an Asset out and in. Exits non-zero on
// a failed step or any console error; screenshots go to SHOTS.
import {chromium} from "playwright-core";
import fs from "node:fs";
import path from "node:path";

const fx = JSON.parse(process.env.FIXTURE);
const shots = process.env.SHOTS;
fs.mkdirSync(shots, {recursive: true});
const errors = [];
const browser = await chromium.launch({executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
                                       args: ["--no-sandbox"]});
let failed = false;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
try {
  const page = await browser.newPage({viewport: {width: 1280, height: 1000}});
  page.on("console", (m) => { if (m.type() === "error") errors.push(page.url() + ": " + m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("dialog", (d) => d.accept());
  page.setDefaultTimeout(15000);
  // The emulator's consent page has no icon (Google's has); its 404 is not the admin page's.
  await page.route(fx.emulator + "/favicon.ico", (r) => r.fulfill({status: 204}));
  const shot = (name) => page.screenshot({path: path.join(shots, name + ".png"), fullPage: true});
  const step = (name) => console.log("step: " + name);
  // Click Refresh until the predicate on the page holds (runs progress in the background).
  const until = async (what, fn, seconds = 90) => {
    const deadline = Date.now() + seconds * 1000;
    while (Date.now() < deadline) {
      if (await fn()) return;
      await sleep(1000);
      await page.locator("#runs-refresh").click();
    }
    throw new Error("timed out waiting for " + what);
  };

  step("sign in; Google never connected");
  await page.goto(fx.url + "/");
  await page.getByLabel("API key").fill(fx.key);
  await page.getByRole("button", {name: "Sign in"}).click();
  await page.locator("#conn-google-status").filter({hasText: "Never connected"}).waitFor();

  step("authorize Google: read-only confirmation, emulator consent page, back to the page");
  await page.getByRole("button", {name: "Authorize Panel to Perform Google Workspace Sync"}).click();
  await page.getByRole("dialog").getByText("read-only access").waitFor();
  await page.getByLabel("Your admin email address").fill(fx.admin);
  await page.getByRole("button", {name: "Continue to consent"}).click();
  await page.locator("#allow").waitFor();
  await shot("suite-01-consent");
  await page.locator("#allow").click();
  await page.waitForURL(fx.url + "/**");
  await page.locator("#status").filter({hasText: "Google Workspace connected"}).waitFor();
  await page.locator("#conn-google-status").filter({hasText: "Connected."}).waitFor();

  step("the first sync's results");
  await until("the first Google run to complete", async () =>
    (await page.locator("#runs tr", {hasText: "completed"}).count()) > 0);
  const firstRuns = await page.locator("#runs tr").count();
  await page.locator("#conn-google").getByText(/completed — requested/).waitFor();
  await shot("suite-02-first-sync");

  step("request an immediate sync and see the run appear");
  await page.locator("#conn-google-sync").click();
  await page.locator("#status").filter({hasText: "Sync requested for Google Workspace"}).waitFor();
  await until("a second run", async () => (await page.locator("#runs tr").count()) > firstRuns);
  await until("the second run to complete", async () =>
    (await page.locator("#runs tr", {hasText: "completed"}).count()) >= 2);
  await shot("suite-03-second-run");

  step("people imported, with the source of each field");
  await page.getByRole("tab", {name: "People"}).click();
  await page.locator("#people tr").first().waitFor();
  const someone = (await page.locator("#people button.link").first().textContent()).trim();
  await page.locator("#people button.link").first().click();
  await page.locator("#person tr", {hasText: "Google"}).first().waitFor();
  await shot("suite-04-person");

  step("check a Chromebook out and in");
  await page.getByRole("tab", {name: "Assets"}).click();
  await page.locator("#assets button.link").first().click();
  const combo = page.getByRole("combobox", {name: /Check out to/});
  await combo.pressSequentially(someone.slice(0, 4), {delay: 30});
  await page.locator("#co-options").getByRole("option", {name: new RegExp(someone)}).waitFor();
  await combo.press("ArrowDown");
  await combo.press("Enter");
  await page.getByRole("button", {name: "Check out", exact: true}).click();
  await page.locator("#asset-current").filter({hasText: "Checked out to"}).waitFor();
  await shot("suite-05-checked-out");
  await page.getByLabel("Condition").fill("good");
  await page.getByRole("button", {name: "Check in"}).click();
  await page.locator("#asset .history li").filter({hasText: "(good)"}).waitFor();

  step("revoke at the emulator; the next use shows revoked");
  const r = await fetch(fx.emulator_admin + `/control/districts/${fx.district}/google/revoke`, {method: "POST"});
  if (!r.ok) throw new Error("emulator revoke failed: " + r.status);
  await page.getByRole("tab", {name: "Cloud Sync"}).click();
  await page.locator("#conn-google-sync").click();
  await until("Google to show revoked", async () =>
    (await page.locator("#conn-google-status", {hasText: "Revoked"}).count()) > 0);
  await shot("suite-06-revoked");
} catch (e) {
  failed = true;
  console.error("FAILED: " + e.message);
} finally {
  await browser.close();
}
if (errors.length) {
  console.error("console errors:\n" + errors.join("\n"));
  failed = true;
}
process.exit(failed ? 1 : 0);

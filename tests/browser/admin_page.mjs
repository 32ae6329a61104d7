// Drives the admin page in Debian's headless Chromium with playwright-core. Run by
// tests/e2e/test_api_browser.py, which starts panel-api (with auth/merger stubs) and loads
// the data; FIXTURE (JSON) says what to look for. Exits non-zero on a failed step or on any
// console error; screenshots go to SHOTS.
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
try {
  const page = await browser.newPage({viewport: {width: 1280, height: 900}});
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("dialog", (d) => d.accept());
  page.setDefaultTimeout(10000);
  const shot = (name) => page.screenshot({path: path.join(shots, name + ".png"), fullPage: true});
  const step = (name) => console.log("step: " + name);

  step("sign in");
  await page.goto(fx.url + "/");
  await page.getByLabel("API key").fill(fx.key);
  await page.getByRole("button", {name: "Sign in"}).click();
  await page.locator("#conn-google-status").filter({hasText: "Connected."}).waitFor();
  await page.locator("#conn-azure-status").filter({hasText: "Revoked"}).waitFor();
  await page.getByText("Google Workspace is applied first").waitFor();
  await page.getByRole("button", {name: "Authorize Panel to Perform Google Workspace Sync"}).waitFor();
  await shot("01-cloud-sync");

  step("request an immediate sync");
  await page.locator("#conn-google-sync").click();
  await page.locator("#status").filter({hasText: "Sync requested for Google Workspace"}).waitFor();

  step("approve the held run");
  await page.getByRole("button", {name: /^Approve held google run/}).click();
  await page.locator("#status").filter({hasText: "Run approved"}).waitFor();
  await page.locator(`tr[data-run="${fx.held_run}"]`).filter({hasText: "approved"}).waitFor();
  await shot("02-run-approved");

  step("authorize Google: read-only confirmation, consent, back to the page");
  await page.locator("#conn-google-authorize").click();
  await page.getByRole("dialog").getByText("read-only access").waitFor();
  await page.getByLabel("Your admin email address").fill("admin@district.example");
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
  const row = page.locator("#person tr").filter({hasText: "job_title"});
  await row.filter({hasText: "Microsoft"}).waitFor();
  await page.locator("#person tr").filter({hasText: "org_unit_path"}).filter({hasText: "Google"}).waitFor();
  await shot("04-person");

  step("assets: find by serial, check out with search-as-you-type, check in");
  await page.getByRole("tab", {name: "Assets"}).click();
  await page.getByLabel("Serial, asset tag or model").fill(fx.serial);
  await page.getByLabel("Serial, asset tag or model").press("Enter");
  await page.getByRole("button", {name: "Show asset " + fx.serial}).click();
  const combo = page.getByRole("combobox", {name: /Check out to/});
  await combo.pressSequentially(fx.kid_query, {delay: 30});
  await page.getByRole("option", {name: new RegExp(fx.kid_name)}).waitFor();
  await combo.press("ArrowDown");
  await combo.press("Enter");
  await page.getByLabel("Due date").fill("2030-06-30");
  await page.getByRole("button", {name: "Check out", exact: true}).click();
  await page.locator("#asset-current").filter({hasText: "Checked out to " + fx.kid_name}).waitFor();
  await shot("05-checked-out");
  await page.getByLabel("Condition").fill("good");
  await page.getByRole("button", {name: "Check in"}).click();
  await page.locator("#checkout-form").waitFor();
  await page.locator("#asset .history li").filter({hasText: "(good)"}).waitFor();
  await shot("06-checked-in");
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

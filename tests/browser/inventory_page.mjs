// A district technology coordinator's day in the admin page, in Debian's headless Chromium
// (playwright-core): find Chromebooks by org-unit subtree and by MAC, read an Asset's page
// (Google fields under labels, who has it, who last used it), edit its tag and status,
// record an audit, retire one; scan a 30-device cart (keyboard-wedge input: the code then
// Enter), see the bad lines, check the cart out to a Person and later check it all in; the
// overdue and audits-due lists; a Person's readable details. Run by
// tests/e2e/test_api_browser.py, which loads the data (FIXTURE) and checks the database
// afterwards. Exits non-zero on a failed step or any console error; screenshots go to SHOTS
// (and to DOC_SHOTS, the committed docs/images, when set).
import fs from "node:fs";
import path from "node:path";
import {launch, openAsset, runSteps, searchAssets} from "./helpers.mjs";

const fx = JSON.parse(process.env.FIXTURE);
const shots = process.env.SHOTS;
const docShots = process.env.DOC_SHOTS || "";
fs.mkdirSync(shots, {recursive: true});
const errors = [];
const browser = await launch();
const step = (name) => console.log("step: " + name);
await runSteps(browser, errors, async () => {
  const context = await browser.newContext({viewport: {width: 1280, height: 900}, acceptDownloads: true});
  await context.addCookies([{name: "panel_session", value: fx.session, url: fx.url}]);
  const page = await context.newPage();
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("dialog", (d) => d.accept());
  page.setDefaultTimeout(15000);
  const shot = async (name, doc) => {
    await page.screenshot({path: path.join(shots, name + ".png"), fullPage: true});
    if (doc && docShots) await page.screenshot({path: path.join(docShots, doc + ".png"), fullPage: true});
  };
  const status = (text) => page.locator("#status").filter({hasText: text}).waitFor();

  await page.goto(fx.url + "/");
  await page.locator("#whoami").filter({hasText: fx.email}).waitFor();

  step("chromebooks: org-unit subtree filter and search by MAC");
  await page.getByRole("tab", {name: "Assets"}).click();
  await page.locator("#assets-ou").waitFor();
  // From the unfiltered first page (many rows) to exactly the one with that MAC.
  await page.locator("#assets tr[data-asset]").nth(1).waitFor();
  await searchAssets(page, fx.mac_typed);
  await page.waitForFunction(() => document.querySelectorAll("#assets tr[data-asset]").length === 1);
  await page.locator(`tr[data-asset="${fx.grade5_asset}"]`).waitFor();
  // /Students: the /Staff Chromebook is not in it, the /Students/Grade 5 one is (each
  // searched by serial, so neither depends on which page it would fall on).
  await page.locator("#assets-ou").fill("/Students");
  await page.getByLabel("Serial, tag, MAC or user").fill(fx.staff_serial);
  await page.locator("#assets-form").getByRole("button", {name: "Search"}).click();
  await page.locator("#assets td").filter({hasText: "No Assets match."}).waitFor();
  await page.getByLabel("Serial, tag, MAC or user").fill(fx.grade5_serial);
  await page.locator("#assets-form").getByRole("button", {name: "Search"}).click();
  await page.locator(`tr[data-asset="${fx.grade5_asset}"]`).waitFor();
  await shot("10-chromebooks", "chromebooks");

  step("an Asset's page: Google fields under labels, who has it, who last used it");
  await page.getByRole("button", {name: "Show asset " + fx.grade5_serial}).click();
  const summary = page.locator("#asset-summary");
  await summary.getByText("Checked out to").waitFor();
  await summary.getByText(fx.holder_name + " since").waitFor();
  await summary.getByText(fx.recent_user).waitFor();
  await page.locator("#asset-swapped").filter({hasText: "last used by " + fx.recent_user}).waitFor();
  await page.locator('#asset tr[data-field="mac_address"]').filter({hasText: "Wi-Fi MAC address"})
    .filter({hasText: fx.mac_shown}).filter({hasText: "Google"}).waitFor();
  await page.locator('#asset tr[data-field="os_version"]').filter({hasText: "ChromeOS version"}).waitFor();
  if (await page.locator('#asset tr[data-field="recent_users"]').count())
    throw new Error("recent_users shown as a raw field");
  if (await page.locator('#asset tr[data-field="annotated_location"]').count())
    throw new Error("an empty field is shown");
  await page.locator("#asset-recent-users li").filter({hasText: fx.recent_user}).waitFor();
  // The coordinator's own notes and Google's, each under its own label.
  await summary.locator("dt").filter({hasText: /^Notes \(Panel\)$/}).waitFor();
  await summary.locator("dd").filter({hasText: /^charger missing$/}).waitFor();
  await page.locator('#asset tr[data-field="notes"]').filter({hasText: "Notes from Google"})
    .filter({hasText: "2024 refresh"}).waitFor();
  if (await page.getByLabel("Notes (Panel)").inputValue() !== "charger missing")
    throw new Error("the Panel notes are not in the edit form");
  await shot("11-asset", "asset");

  step("edit the tag and the status, record an audit");
  const edit = page.getByRole("form", {name: "Edit asset"});
  await edit.getByLabel("Asset tag").fill(fx.new_tag);
  await edit.getByLabel("Status in Panel").selectOption("in_repair");
  await page.getByRole("button", {name: "Save changes"}).click();
  await status("Asset saved");
  await summary.getByText(fx.new_tag).waitFor();
  await summary.getByText("In repair").waitFor();
  await page.getByLabel("Audit note").fill("seen in cart 3");
  await page.getByLabel("Next audit due").fill("2020-01-15");
  await page.getByRole("button", {name: "Record audit"}).click();
  await status("Audit recorded");
  await page.locator("#asset-audits li").filter({hasText: "seen in cart 3"}).filter({hasText: "person:" + fx.email}).waitFor();

  step("retire a Chromebook that is not checked out");
  await openAsset(page, fx.retire_serial);
  await page.getByRole("button", {name: "Retire"}).click();
  await status("Asset retired");
  await summary.getByText("Retired").waitFor();
  if (await page.locator("#checkout-form").count()) throw new Error("a retired Asset offers checkout");

  step("cart: scan 30 Chromebooks and three bad codes");
  await page.getByRole("tab", {name: "Cart"}).click();
  const scan = page.getByLabel("Scan or type an asset tag or serial, then Enter");
  await scan.waitFor();
  // A keyboard-wedge scanner: the characters, then Enter, one code after another at once.
  for (const code of [...fx.cart_codes, fx.unknown_code, fx.retired_code, fx.out_code]) {
    await scan.pressSequentially(code, {delay: 0});
    await scan.press("Enter");
  }
  await page.locator("#cart-count").filter({hasText: `${fx.cart_codes.length + 3} in the cart, ${fx.cart_codes.length} ready to check out`}).waitFor();
  await page.locator(`#cart-lines tr[data-code="${fx.unknown_code}"]`).filter({hasText: "Not found"}).waitFor();
  await page.locator(`#cart-lines tr[data-code="${fx.retired_code}"]`).filter({hasText: "Retired"}).waitFor();
  await page.locator(`#cart-lines tr[data-code="${fx.out_code}"]`).filter({hasText: "Already checked out to " + fx.holder_name}).waitFor();
  const order = await page.locator("#cart-lines tr").evaluateAll((rows) => rows.map((r) => r.dataset.code));
  if (order.slice(0, fx.cart_codes.length).join() !== fx.cart_codes.join()) throw new Error("cart lines out of scan order: " + order);
  await page.getByLabel("Find the Person (name or email)").fill(fx.kid_query);
  await page.getByLabel("Find the Person (name or email)").press("Enter");
  const kidOption = page.locator("#cart-person option").filter({hasText: fx.kid_name});
  await kidOption.waitFor({state: "attached"});
  await page.getByLabel("Person", {exact: true}).selectOption(await kidOption.getAttribute("value"));
  await page.getByLabel("Due back on").fill("2031-06-15");
  await page.locator("#cart-submit").click();
  await page.locator("#alert").filter({hasText: "Nothing was changed: 3 line(s)"}).waitFor();
  await shot("12-cart-bad-lines", "cart-bad-lines");
  for (const code of [fx.unknown_code, fx.retired_code, fx.out_code])
    await page.getByRole("button", {name: `Remove ${code} from the cart`}).click();

  step("cart: check the 30 out to one Person");
  await page.locator("#cart-submit").filter({hasText: `Check out ${fx.cart_codes.length} Assets`}).click();
  await status(`${fx.cart_codes.length} Assets checked out to ${fx.kid_name}`);
  await page.locator(`#cart-lines tr[data-state="done_out"]`).nth(fx.cart_codes.length - 1).waitFor();
  await shot("13-cart-checked-out", "cart-checked-out");

  step("cart: end-of-year check-in by scanning, one condition for all");
  await page.getByRole("button", {name: "Empty the cart"}).click();
  await page.getByLabel("Check in (end of year)").check();
  for (const code of fx.cart_codes) {
    await scan.pressSequentially(code, {delay: 0});
    await scan.press("Enter");
  }
  await page.locator("#cart-count").filter({hasText: `${fx.cart_codes.length} in the cart, ${fx.cart_codes.length} ready to check in`}).waitFor();
  await page.getByLabel("Returned condition (every Asset)").fill("good");
  await page.locator("#cart-submit").filter({hasText: `Check in ${fx.cart_codes.length} Assets`}).click();
  await status(`${fx.cart_codes.length} Assets checked in`);

  step("overdue and audits due");
  await page.getByRole("tab", {name: "Overdue and audits"}).click();
  await page.locator(`#overdue tr[data-checkout="${fx.overdue_checkout}"]`).filter({hasText: fx.holder_name}).waitFor();
  await page.locator(`#auditsdue tr[data-asset="${fx.grade5_asset}"]`).filter({hasText: "overdue"}).waitFor();
  await page.locator(`#swapped tr[data-asset="${fx.grade5_asset}"]`).filter({hasText: fx.holder_name})
    .filter({hasText: fx.recent_user}).waitFor();
  await shot("14-overdue-audits", "overdue-audits");

  step("download the overdue list and every Asset as CSV");
  for (const [link, file] of [["Download overdue checkouts (CSV)", "overdue.csv"],
                              ["Download every Asset (CSV)", "assets.csv"]]) {
    if (file === "assets.csv") await page.getByRole("tab", {name: "Assets"}).click();
    const [download] = await Promise.all([page.waitForEvent("download"),
                                          page.getByRole("link", {name: link}).click()]);
    if (!download.suggestedFilename().endsWith(file)) throw new Error("download named " + download.suggestedFilename());
    await download.saveAs(path.join(fx.download_dir, file));
  }

  step("a Person's readable details");
  await page.getByRole("tab", {name: "People"}).click();
  await page.getByLabel("Search name or email").fill(fx.person_query);
  await page.getByLabel("Search name or email").press("Enter");
  await page.getByRole("button", {name: "Show " + fx.person_name}).click();
  await page.locator("#person tr").filter({hasText: "Other addresses (Microsoft proxy addresses)"})
    .filter({hasText: fx.proxy_shown}).filter({hasText: "Microsoft"}).waitFor();
  const text = await page.locator("#person").innerText();
  for (const raw of ["proxy_addresses", "{\"values\"", "other_mails", "job_title"])
    if (text.includes(raw)) throw new Error("the person view shows " + raw);
  await page.locator("#person tr").filter({hasText: "Job title"}).filter({hasText: "Microsoft"}).waitFor();
  await page.locator("#person tr").filter({hasText: "Last sign-in to Google"}).filter({hasText: fx.login_shown}).waitFor();
  await shot("15-person", "person");

  step("people: the org-unit tree filters to a subtree; a Person's devices");
  await page.getByLabel("Search name or email").fill("");
  await page.getByRole("button", {name: "People in /Students and below"}).click();
  await page.locator("#people tr").filter({hasText: fx.kid_name}).waitFor();
  if (await page.locator("#people tr").filter({hasText: fx.holder_name}).count())
    throw new Error("/Students lists a /Staff Person");
  await page.getByLabel("Search name or email").fill("holly");
  await page.locator("#people-ou").fill("");
  await page.getByLabel("Search name or email").press("Enter");
  await page.getByRole("button", {name: "Show " + fx.holder_name}).click();
  await page.locator("#person-devices li").filter({hasText: fx.new_tag}).filter({hasText: "checked out to them; last used by " + fx.recent_user}).waitFor();
  await page.locator("#person .history li").filter({hasText: fx.new_tag}).waitFor();
  await shot("17-person-devices", "person-devices");

  step("a tablet-sized window still works");
  await page.setViewportSize({width: 820, height: 1180});
  await page.getByRole("tab", {name: "Cart"}).click();
  await scan.waitFor();
  await shot("16-tablet-cart", "tablet-cart");
});

// Shared by the admin page's browser tests (admin_page.mjs, inventory_page.mjs,
// suite_page.mjs): Debian's Chromium, the steps they all take with an Asset, and the common
// ending (exit non-zero on a failed step or on any console error).
import {chromium} from "playwright-core";

export const launch = (extraArgs = []) =>
  chromium.launch({executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
                   args: ["--no-sandbox", ...extraArgs]});

// Runs steps; then closes the browser and exits: 1 when a step threw (onFailure(e) reports it,
// else one FAILED line) or errors holds console errors, 0 otherwise.
export async function runSteps(browser, errors, steps, onFailure = null) {
  let failed = false;
  try {
    await steps();
  } catch (e) {
    failed = true;
    if (onFailure) await onFailure(e);
    else console.error("FAILED: " + e.message);
  } finally {
    await browser.close();
  }
  if (errors.length) {
    console.error("console errors:\n" + errors.join("\n"));
    failed = true;
  }
  process.exit(failed ? 1 : 0);
}

// The Assets search (the current tab's): query, then Enter.
export async function searchAssets(page, query) {
  await page.getByLabel("Serial, tag, MAC or user").fill(query);
  await page.getByLabel("Serial, tag, MAC or user").press("Enter");
}

// An Asset's page, found by its serial number.
export async function openAsset(page, serial) {
  await searchAssets(page, serial);
  await page.getByRole("button", {name: "Show asset " + serial}).click();
}

// On an Asset's page: check it out to the Person named name, found by typing query into the
// search-as-you-type box (with an optional due date); waits until the page says so.
export async function checkOut(page, query, name, due = null) {
  const combo = page.getByRole("combobox", {name: /Check out to/});
  await combo.pressSequentially(query, {delay: 30});
  await page.getByRole("option", {name: new RegExp(name)}).waitFor();
  await combo.press("ArrowDown");
  await combo.press("Enter");
  if (due) await page.getByLabel("Due date").fill(due);
  await page.getByRole("button", {name: "Check out", exact: true}).click();
  await page.locator("#asset-current").filter({hasText: "Checked out to " + name}).waitFor();
}

// On an Asset's page: check it in, in the given condition.
export async function checkIn(page, condition) {
  await page.getByLabel("Condition", {exact: true}).fill(condition);
  await page.getByRole("button", {name: "Check in"}).click();
}

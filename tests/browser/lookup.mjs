// Opens a Sightline node's lookup page in headless Chromium, types a number
// into the labelled field, submits the form, and reports the rendered
// verdict as JSON on stdout. Saves a screenshot.
//
// usage: node lookup.mjs BASE_URL NUMBER SCREENSHOT.png
import { chromium } from "playwright-core";

const [base, number, screenshot] = process.argv.slice(2);
if (!base || !number || !screenshot) {
  console.error("usage: node lookup.mjs BASE_URL NUMBER SCREENSHOT.png");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  await page.goto(base, { waitUntil: "load" });
  await page.getByLabel("Phone number").fill(number);
  await Promise.all([page.waitForLoadState("load"), page.getByRole("button", { name: "Look up" }).click()]);
  const badge = page.locator("#verdict");
  await badge.waitFor({ timeout: 10000 });
  const result = {
    url: page.url(),
    band: await badge.getAttribute("data-band"),
    label: (await badge.textContent()).trim(),
    score: (await page.locator("#score").textContent()).trim(),
    reporters: await page.locator("table tbody tr td:first-child").allTextContents(),
    block: (await page.locator("#block-activity").textContent()).trim(),
  };
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}

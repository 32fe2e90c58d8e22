// Drives a Sightline node's web UI in headless Chromium as an analyst
// would: opens the node, is shown the sign-in page, signs in with a token,
// types a number into the labelled field, submits the form, and reports the
// rendered verdict as JSON on stdout, with every URL the browser requested
// (so the caller can check that no token or number travelled in one).
// Saves a screenshot.
//
// usage: SIGHTLINE_TOKEN=... node lookup.mjs BASE_URL NUMBER SCREENSHOT.png
import { chromium } from "playwright-core";

const [base, number, screenshot] = process.argv.slice(2);
const token = process.env.SIGHTLINE_TOKEN;
if (!base || !number || !screenshot || !token) {
  console.error("usage: SIGHTLINE_TOKEN=... node lookup.mjs BASE_URL NUMBER SCREENSHOT.png");
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
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  const urls = [];
  const consoleErrors = [];
  page.on("request", (request) => urls.push(request.url()));
  page.on("console", (message) => {
    if (message.type() === "error") consoleErrors.push(message.text());
  });
  await page.goto(base, { waitUntil: "load" });
  const signInShown = await page.getByRole("heading", { name: "Sign in" }).isVisible();
  await page.getByLabel("Access token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByLabel("Phone number").fill(number);
  await Promise.all([page.waitForLoadState("load"), page.getByRole("button", { name: "Look up" }).click()]);
  const badge = page.locator("#verdict");
  await badge.waitFor({ timeout: 10000 });
  const cookies = await context.cookies();
  const result = {
    signInShown,
    url: page.url(),
    urls,
    consoleErrors,
    cookies: cookies.map((c) => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite })),
    band: await badge.getAttribute("data-band"),
    label: (await badge.textContent()).trim(),
    score: (await page.locator("#score").textContent()).trim(),
    reporters: await page.locator("table tbody tr td:first-child").allTextContents(),
    block: (await page.locator("#block-activity").textContent()).trim(),
  };
  await page.screenshot({ path: screenshot, fullPage: true });
  // Sign out: back to the sign-in page, and the lookup page is closed again.
  await Promise.all([
    page.waitForURL((url) => url.pathname.startsWith("/login")),
    page.getByRole("button", { name: "Sign out" }).click(),
  ]);
  const again = await page.goto(base, { waitUntil: "load" });
  result.afterSignOut = again.status();
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}

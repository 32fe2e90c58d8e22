// Drives a Sightline node's web UI in headless Chromium as an analyst
// would: opens the node, is shown the sign-in page, signs in with a token,
// types a number into the labelled field, submits the form, and reports the
// rendered verdict as JSON on stdout, with every URL the browser requested
// (so the caller can check that no token or number travelled in one).
// Then pastes MESSAGE (an SMS) into "Check a message" with default region
// REGION and reports the numbers found and their bands, and measures the
// peers page in a 1280-pixel window. Then looks the number up again and
// follows its campaign link to the campaign page. Downloads the lookup as a
// STIX bundle on the way. Saves screenshots.
//
// usage: SIGHTLINE_TOKEN=... node lookup.mjs BASE_URL NUMBER SCREENSHOT.png MESSAGE REGION
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const [base, number, screenshot, message, region] = process.argv.slice(2);
const token = process.env.SIGHTLINE_TOKEN;
if (!base || !number || !screenshot || !message || !region || !token) {
  console.error("usage: SIGHTLINE_TOKEN=... node lookup.mjs BASE_URL NUMBER SCREENSHOT.png MESSAGE REGION");
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
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
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
  result.explained = await page.locator("summary", { hasText: "How this score is computed" }).isVisible();
  // The lookup, downloaded as a STIX bundle for OpenCTI.
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("button", { name: "STIX 2.1 bundle (OpenCTI)" }).click(),
  ]);
  const bundle = JSON.parse(readFileSync(await download.path(), "utf8"));
  result.exported = {
    file: download.suggestedFilename(),
    type: bundle.type,
    numbers: bundle.objects.filter((o) => o.type === "phone-number").map((o) => o.value),
    indicators: bundle.objects.filter((o) => o.type === "indicator").length,
  };
  await page.screenshot({ path: screenshot, fullPage: true });
  // Paste a message: every number in it is looked up.
  await page.locator("summary", { hasText: "Check a message" }).click();
  await page.getByLabel("Message text").fill(message);
  await page.locator("#message-region").fill(region);
  await Promise.all([
    page.waitForLoadState("load"),
    page.getByRole("button", { name: "Find and check its numbers" }).click(),
  ]);
  await page.locator("#checked").waitFor({ timeout: 10000 });
  result.message = {
    url: page.url(),
    heading: (await page.locator("#many h2").textContent()).trim(),
    numbers: await page.locator("#checked td.number").allTextContents(),
    bands: await page.locator("#checked [data-band]").evaluateAll((els) => els.map((e) => e.getAttribute("data-band"))),
    activeBlock: await page.locator("#checked strong.warning").count(),
  };
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-message.png"), fullPage: true });
  // The peers page fits the window: nothing scrolls sideways.
  await page.goto(new URL("/peers", base).href, { waitUntil: "load" });
  result.peers = {
    overflow: await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth),
    trust: await page.locator("table.peers tbody tr td:nth-child(2)").allTextContents(),
  };
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-peers.png"), fullPage: true });
  // The number's campaign, from its lookup.
  await page.goto(base, { waitUntil: "load" });
  await page.getByLabel("Phone number").fill(number);
  await Promise.all([page.waitForLoadState("load"), page.getByRole("button", { name: "Look up" }).click()]);
  await page.locator("#campaign").waitFor({ timeout: 10000 });
  result.campaign = {
    numbers: (await page.locator("#campaign #campaign-numbers").textContent()).trim(),
    state: await page.locator("#campaign").getAttribute("data-state"),
  };
  await Promise.all([
    page.waitForURL((url) => url.pathname.startsWith("/campaigns/")),
    page.locator("#campaign-link").click(),
  ]);
  result.campaign.page = {
    url: page.url(),
    heading: (await page.locator("h1").textContent()).trim(),
    numbers: (await page.locator("#campaign-numbers").textContent()).trim(),
    linked: await page.locator("#campaign-links tbody tr").count(),
    reports: await page.locator("#campaign-timeline tbody tr").count(),
    overflow: await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth),
  };
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-campaign.png"), fullPage: true });
  // The campaign, downloaded as a MISP event.
  const [misp] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("button", { name: "MISP event" }).click(),
  ]);
  const event = JSON.parse(readFileSync(await misp.path(), "utf8")).Event;
  result.campaign.misp = {
    file: misp.suggestedFilename(),
    tags: event.Tag.map((t) => t.name),
    objects: event.Object.length,
  };
  await Promise.all([
    page.waitForURL((url) => url.pathname === "/campaigns"),
    page.getByRole("link", { name: "Campaigns" }).click(),
  ]);
  result.campaigns = {
    rows: await page.locator("#campaigns tbody tr").count(),
    states: await page.locator("#campaigns tbody tr").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-state"))),
    overflow: await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth),
  };
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

// Headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core)
// loads a page and waits for its script to set window.gwsResult.
//
//   node browser.js URL [CHROMIUM_PATH]
//
// Prints window.gwsResult as one JSON line plus the browser's version.
// Exits 2 on any error; every wait is bounded (the test's own timeout is longer).
"use strict";
const { chromium } = require("playwright-core");

const [url, executablePath = "/usr/bin/chromium"] = process.argv.slice(2);

(async () => {
  const browser = await chromium.launch({
    executablePath,
    timeout: 60000,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  try {
    const page = await browser.newPage();
    const console_lines = [];
    page.on("console", (msg) => console_lines.push(msg.text()));
    await page.goto(url, { timeout: 30000 });
    const handle = await page.waitForFunction(() => window.gwsResult, null, { timeout: 30000 });
    const result = await handle.jsonValue();
    result.browser = browser.version();
    result.console = console_lines;
    console.log(JSON.stringify(result));
  } finally {
    await browser.close();
  }
})().catch((err) => {
  console.error(String(err && err.stack ? err.stack : err));
  process.exit(2);
});

// node run-pairwise.mjs [N] — X25519 pairwise sender-key cost in headless Chromium (and in node for comparison)
import { chromium } from 'playwright-core';
import { startServer } from './server.mjs';
import { runPairwise } from './web/pairwise.mjs';
const n = Number(process.argv[2] || 100);
const server = await startServer(0);
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] });
try {
  const page = await browser.newPage();
  await page.goto(`http://localhost:${server.address().port}/web/pairwise.html`);
  await page.waitForFunction(() => window.ready);
  console.log(JSON.stringify({ where: 'chromium', ...(await page.evaluate((n) => window.runPairwise(n), n)) }));
} finally { await browser.close(); server.close(); }
console.log(JSON.stringify({ where: 'node ' + process.version, ...(await runPairwise(n)) }));

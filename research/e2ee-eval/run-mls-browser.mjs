// node run-mls-browser.mjs [N] [suite] — runs web/mls-bench.mjs in headless Chromium (ES modules + import map)
import { chromium } from 'playwright-core';
import { startServer } from './server.mjs';
const n = Number(process.argv[2] || 100);
const suite = process.argv[3] || 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519';
const server = await startServer(0);
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'] });
try {
  const page = await browser.newPage();
  const requests = new Set();
  const files = new Set();
  page.on('request', (r) => { const pth = new URL(r.url()).pathname; files.add(pth); requests.add(pth.split('/').slice(0, 4).join('/')); });
  page.on('pageerror', (e) => console.error('pageerror', String(e)));
  await page.goto(`http://localhost:${server.address().port}/web/mls-bench.html`);
  await page.waitForFunction(() => window.mlsReady, null, { timeout: 30000 });
  const out = await page.evaluate(([n, s, all]) => window.runBench(n, s, all), [n, suite, process.env.ALL === '1']);
  console.log(JSON.stringify({ where: 'chromium', ...out }));
  console.error('module roots loaded:', [...requests].filter((p) => p.startsWith('/node_modules')).sort().join(' '), 'requests:', requests.size);
  const fs = await import('node:fs');
  const per = {};
  for (const f of files) { if (!f.startsWith('/node_modules/')) continue; const root = f.split('/').slice(2, f.startsWith('/node_modules/@') ? 4 : 3).join('/'); per[root] = per[root] || { files: 0, bytes: 0 }; per[root].files++; per[root].bytes += fs.statSync('.' + f).size; }
  console.error('vendored modules actually loaded:', JSON.stringify(per));
} finally { await browser.close(); server.close(); }

// What every browser script shares: Debian's chromium started headless, expectations that
// print as they pass and throw on the first that fails, and screenshots into OUT.
import fs from 'node:fs';
import { chromium } from 'playwright-core';

const { OUT } = process.env;
fs.mkdirSync(OUT, { recursive: true });

export function check(cond, what) {
  if (!cond) throw new Error(`expectation failed: ${what}`);
  console.log(`ok - ${what}`);
}

export const shot = (page, name) => page.screenshot({ path: `${OUT}/${name}.png`, fullPage: true });

export function launch() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
}

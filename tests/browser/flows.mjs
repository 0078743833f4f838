// End-to-end flows of the dashboard in headless Chromium (Debian's /usr/bin/chromium).
// Env: BASE (Posta URL), ADMIN_EMAIL, ADMIN_PASSWORD, SSO_NAME (provider button text), OUT
// (screenshot directory). Exits non-zero on the first failed expectation.
import crypto from 'node:crypto';
import http from 'node:http';
import { check, launch, shot } from './harness.mjs';

const { BASE, ADMIN_EMAIL, ADMIN_PASSWORD, SSO_NAME } = process.env;

function base32(s) {
  const a = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0, n = 0; const out = [];
  for (const c of s.replace(/=+$/, '')) { bits = (bits << 5) | a.indexOf(c); n += 5; if (n >= 8) { n -= 8; out.push((bits >>> n) & 0xff); } }
  return Buffer.from(out);
}

// RFC 6238, computed here independently of the server.
function totp(secret, unix) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(unix / 30)));
  const mac = crypto.createHmac('sha1', base32(secret)).update(counter).digest();
  const off = mac[19] & 0xf;
  const bin = ((mac[off] & 0x7f) << 24) | (mac[off + 1] << 16) | (mac[off + 2] << 8) | mac[off + 3];
  return String(bin % 1000000).padStart(6, '0');
}

async function serverNow() {
  const r = await fetch(`${BASE}/api/v1/healthz`);
  return Math.floor(Date.parse((await r.json()).data.timestamp) / 1000);
}


const browser = await launch();
try {
  const email = 'browser.user@example.com';
  const password = 'violet-tractor-41-moss';

  // Register.
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await ctx.newPage();
  await page.goto(`${BASE}/`);
  await page.waitForURL('**/login');
  await page.waitForSelector(`#sso a:has-text("${SSO_NAME}")`);
  await shot(page, 'login');
  check(await page.locator('#register-link a').count() === 1, 'register link shown while registration is open');
  await page.click('#register-link a');
  await page.waitForURL('**/register');
  await page.getByLabel('Name').fill('Browser User');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password (at least 8 characters)').fill(password);
  await shot(page, 'register');
  await page.click('#register-form button[type=submit]');
  await page.waitForURL('**/account');
  await page.waitForSelector('#api-keys');
  check((await page.textContent('main')).includes(email), 'registered and signed in');
  const cookies = await ctx.cookies();
  const sess = cookies.find(c => c.name === 'posta_session');
  check(sess && sess.httpOnly && sess.sameSite === 'Strict', 'session is an HttpOnly SameSite=Strict cookie');
  check(await page.evaluate(() => Object.keys(localStorage).length === 0), 'nothing in localStorage');
  // CSRF: the browser marks its own pages' requests same-origin (Sec-Fetch-Site, Origin), so
  // a plain fetch from them is served; cross-site ones are refused (tests/api/accounts.rs).
  const bare = await page.evaluate(() => fetch('/api/v1/users/me/sessions/revoke-others', { method: 'POST' }).then(r => r.status));
  check(bare === 200, 'a same-origin fetch needs no X-Requested-With');

  // A page on another site (localhost, while the dashboard is on 127.0.0.1) tries to use the
  // victim's cookie: a form POST, a fetch with credentials, an image GET. Nothing is read and
  // nothing changes: the victim's second session survives its "revoke others".
  const other = await fetch(`${BASE}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password }) });
  check(other.status === 200, 'a second session for the victim');
  const sessionsNow = () => page.evaluate(() => fetch('/api/v1/users/me/sessions').then(r => r.json()).then(j => j.data.length));
  check(await sessionsNow() === 2, 'two sessions before the attack');
  const evil = `<!doctype html><title>start</title>
<iframe name="sink"></iframe>
<form id="f" method="POST" target="sink" action="${BASE}/api/v1/users/me/sessions/revoke-others"><input name="x" value="1"></form>
<img id="img" src="${BASE}/api/v1/users/me">
<script>
(async () => {
  let read = 'nothing';
  try { const r = await fetch('${BASE}/api/v1/users/me', { credentials: 'include' }); read = await r.text(); } catch (e) { read = 'blocked'; }
  try { await fetch('${BASE}/api/v1/users/me/sessions/revoke-others', { method: 'POST', credentials: 'include', mode: 'no-cors' }); } catch (e) {}
  await new Promise(ok => { document.querySelector('iframe').onload = ok; document.getElementById('f').submit(); });
  document.title = 'done:' + read;
})();
</script>`;
  const attacker = http.createServer((req, res) => { res.writeHead(200, { 'content-type': 'text/html' }); res.end(evil); });
  await new Promise(ok => attacker.listen(0, '127.0.0.1', ok));
  const evilPage = await ctx.newPage();
  await evilPage.goto(`http://localhost:${attacker.address().port}/`);
  await evilPage.waitForFunction(() => document.title.startsWith('done:'), null, { timeout: 15000 });
  const got = (await evilPage.title()).slice(5);
  check(!got.includes(email), `the other site read nothing (${got.slice(0, 40)})`);
  check(await sessionsNow() === 2, 'the other site changed nothing (form POST and fetch refused)');
  await evilPage.close();
  attacker.close();

  // Enrol 2FA: read the secret from the page and compute the code.
  await page.click('#setup-2fa');
  const secret = (await page.textContent('#totp-secret')).trim();
  check(/^[A-Z2-7]{32}$/.test(secret), 'secret shown with the QR code');
  check(await page.locator('img.qr').count() === 1, 'QR code shown');
  await shot(page, 'two-factor-setup');
  const now = await serverNow();
  await page.getByLabel('Code from the app').fill(totp(secret, now));
  await page.click('#verify-2fa-form button[type=submit]');
  await page.waitForSelector('#recovery-codes li');
  check(await page.locator('#recovery-codes li').count() === 10, 'ten recovery codes shown once');
  await shot(page, 'two-factor-recovery-codes');
  await page.click('#recovery button:has-text("Done")');
  await page.waitForSelector('#disable-2fa-form');

  // Sign out, then sign in with the next code.
  await page.click('#signout');
  await page.waitForURL('**/login');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#code-form:not(.hidden)');
  await shot(page, 'login-two-factor');
  await page.getByLabel('Authentication code').fill(totp(secret, (await serverNow()) + 30));
  await page.click('#code-form button[type=submit]');
  await page.waitForURL('**/account');
  check(true, 'signed in with password and TOTP code');

  // API key: create, use, revoke.
  await page.waitForSelector('#api-key-form');
  await page.locator('#api-key-form').getByLabel('Name').fill('browser-key');
  await page.click('#api-key-form button[type=submit]');
  const key = (await page.textContent('#new-key-value')).trim();
  check(key.startsWith('posta_'), 'key shown once');
  let v = await fetch(`${BASE}/api/v1/auth/verify`, { headers: { Authorization: `Bearer ${key}` } });
  check(v.status === 200 && v.headers.get('x-posta-user-email') === email, 'key works on /api/v1/auth/verify');
  await page.waitForSelector('tr[data-key="browser-key"] button:has-text("Revoke")');
  await shot(page, 'account');
  await page.click('tr[data-key="browser-key"] button:has-text("Revoke")');
  await page.waitForSelector('tr[data-key="browser-key"] td:has-text("revoked")');
  v = await fetch(`${BASE}/api/v1/auth/verify`, { headers: { Authorization: `Bearer ${key}` } });
  check(v.status === 401, 'revoked key refused');

  // SSO through the real identity provider.
  const sso = await browser.newContext();
  const sp = await sso.newPage();
  await sp.goto(`${BASE}/login`);
  await sp.click(`#sso a:has-text("${SSO_NAME}")`);
  await sp.waitForSelector('input[name=login]');
  await sp.fill('input[name=login]', 'sso.person');
  await sp.fill('input[name=password]', 'anything');
  await sp.click('button[type=submit]');
  await sp.waitForSelector('button[type=submit]:has-text("Continue")');
  await sp.click('button[type=submit]');
  await sp.waitForURL('**/account');
  await sp.waitForSelector('#sso-links li');
  check((await sp.textContent('main')).includes('sso.person@example.com'), 'signed in through the identity provider');
  await shot(sp, 'account-sso');

  // Admin disables the browser user; its session dies at once.
  const adm = await browser.newContext({ viewport: { width: 1200, height: 1000 } });
  const ap = await adm.newPage();
  await ap.goto(`${BASE}/login`);
  await ap.getByLabel('Email').fill(ADMIN_EMAIL);
  await ap.getByLabel('Password').fill(ADMIN_PASSWORD);
  await ap.click('#login-form button[type=submit]');
  await ap.waitForURL('**/account');
  await ap.goto(`${BASE}/admin`);
  await ap.waitForSelector('#mail-off');
  check(true, 'the settings say that mail is off without a relay');
  await ap.fill('#user-search', 'browser.user');
  await ap.click('#users form[role=search] button');
  await ap.waitForSelector(`tr[data-email="${email}"] button:has-text("Disable")`);
  await shot(ap, 'admin');
  await ap.click(`tr[data-email="${email}"] button:has-text("Disable")`);
  await ap.waitForSelector(`tr[data-email="${email}"] td:has-text("disabled")`);
  await page.reload();
  await page.waitForURL('**/login');
  check(true, 'disabled user is sent back to sign-in');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#login-msg .msg');
  check((await page.textContent('#login-msg')).includes('disabled'), 'clear message for a disabled account');
  await shot(page, 'login-disabled');
  console.log('all browser flows passed');
} finally {
  await browser.close();
}

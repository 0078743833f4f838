// Passkeys through the dashboard in headless Chromium with a virtual authenticator (Chrome
// DevTools Protocol WebAuthn domain: ctap2, internal transport, resident keys, user
// verification). Env: BASE (Posta on http://localhost:PORT, also its web_url), OUT
// (screenshot directory). Exits non-zero on the first failed expectation.
import { check, launch, shot } from './harness.mjs';

const { BASE } = process.env;

const me = page => page.evaluate(() => fetch('/api/v1/users/me').then(r => r.status === 200 ? r.json().then(j => j.data) : null));

// A platform authenticator that holds discoverable credentials and verifies its user.
async function authenticator(ctx, page) {
  const cdp = await ctx.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2', ctap2Version: 'ctap2_1', transport: 'internal', hasResidentKey: true,
      hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true,
    },
  });
  return { cdp, authenticatorId };
}

async function signOut(page) {
  await page.goto(`${BASE}/account`);
  await page.click('#signout');
  await page.waitForURL('**/login');
}

const browser = await launch();
try {
  const email = 'passkey.user@example.com';
  const password = 'amber-falcon-62-reed';
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await ctx.newPage();
  page.on('dialog', d => d.accept());
  const auth = await authenticator(ctx, page);

  // Register an account, then add a passkey from the account page.
  await page.goto(`${BASE}/register`);
  await page.getByLabel('Name').fill('Passkey User');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password (at least 8 characters)').fill(password);
  await page.click('#register-form button[type=submit]');
  await page.waitForURL('**/account');
  await page.waitForSelector('#passkey-form');
  await page.locator('#passkey-form').getByLabel('Name for a new passkey').fill('Laptop');
  await page.click('#passkey-form button[type=submit]');
  await page.waitForSelector('tr[data-passkey="Laptop"], #passkey-msg .msg.error');
  const addMsg = await page.locator('#passkey-msg').textContent();
  check(await page.locator('tr[data-passkey="Laptop"]').count() === 1, `passkey added (${addMsg})`);
  await shot(page, 'passkeys');
  const { credentials } = await auth.cdp.send('WebAuthn.getCredentials', { authenticatorId: auth.authenticatorId });
  check(credentials.length === 1 && credentials[0].isResidentCredential, 'a discoverable credential was created');
  check(credentials[0].rpId === new URL(BASE).hostname, 'for this relying party');
  const listed = await page.evaluate(() => fetch('/api/v1/users/me/passkeys').then(r => r.json()).then(j => j.data));
  check(listed.length === 1 && listed[0].name === 'Laptop' && !('public_key' in listed[0]), 'listed by name, without its key');

  // Rename it.
  page.removeAllListeners('dialog');
  page.on('dialog', d => d.type() === 'prompt' ? d.accept('Work laptop') : d.accept());
  await page.click('tr[data-passkey="Laptop"] button:has-text("Rename")');
  await page.waitForSelector('tr[data-passkey="Work laptop"]');
  check(true, 'renamed from the account page');

  // Sign out, then sign in with the passkey alone: no email, no password.
  await signOut(page);
  let finishBody = null;
  page.on('request', r => { if (r.url().endsWith('/api/v1/auth/passkey/finish')) finishBody = r.postData(); });
  await page.waitForSelector('#passkey-signin');
  await shot(page, 'login-passkey');
  await page.click('#passkey-signin');
  await page.waitForURL('**/account');
  check((await me(page)).email === email, 'signed in with the passkey alone');
  const sess = (await ctx.cookies()).find(c => c.name === 'posta_session');
  check(sess && sess.httpOnly, 'with the session cookie');

  // The same assertion again (a replay) is refused, from anywhere.
  check(finishBody !== null, 'the assertion was captured');
  // Refused as a used ceremony, before the signature counter (which would refuse it too) is
  // ever looked at.
  const replay = await fetch(`${BASE}/api/v1/auth/passkey/finish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: finishBody });
  const replayBody = await replay.json();
  check(replay.status === 400 && /already used/.test(replayBody.error.message), `a replayed assertion is refused as a used ceremony (${replay.status})`);
  // Under a fresh ceremony it answers the wrong challenge.
  const fresh = await (await fetch(`${BASE}/api/v1/auth/passkey/start`, { method: 'POST' })).json();
  const old = JSON.parse(finishBody);
  const swapped = await fetch(`${BASE}/api/v1/auth/passkey/finish`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ceremony: fresh.data.ceremony, credential: old.credential }) });
  check(swapped.status === 401, `an old assertion under a new challenge is refused (${swapped.status})`);

  // Password first, then the passkey as the second factor.
  await signOut(page);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#passkey-step:not(.hidden)');
  check(await page.locator('#code-form.hidden').count() === 1, 'no code asked of an account without TOTP');
  await shot(page, 'login-second-factor-passkey');
  await page.click('#use-passkey');
  await page.waitForURL('**/account');
  check((await me(page)).email === email, 'signed in with password and passkey');
  const direct = await fetch(`${BASE}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password }) });
  const dj = await direct.json();
  check(direct.status === 401 && dj.data.requires_2fa && dj.data.methods.includes('passkey'), 'the password alone is not enough');
  const withCode = await fetch(`${BASE}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ pending_token: dj.data.pending_token, two_factor_code: '123456' }) });
  check(withCode.status === 401, 'nor a code for an account whose second factor is a passkey');

  // Another browser, with an authenticator that does not hold the credential, cannot sign in.
  const other = await browser.newContext();
  const op = await other.newPage();
  const otherAuth = await authenticator(other, op);
  await otherAuth.cdp.send('WebAuthn.setAutomaticPresenceSimulation', { authenticatorId: otherAuth.authenticatorId, enabled: true });
  await op.goto(`${BASE}/login`);
  await op.waitForSelector('#passkey-signin');
  await op.click('#passkey-signin');
  await op.waitForSelector('#login-msg .msg', { timeout: 20000 });
  check((await me(op)) === null, 'a browser without the credential is not signed in');
  await other.close();

  // Remove the passkey (the account keeps its password); it no longer signs in.
  await page.goto(`${BASE}/account`);
  await page.waitForSelector('tr[data-passkey="Work laptop"]');
  await page.click('tr[data-passkey="Work laptop"] button:has-text("Remove")');
  await page.waitForSelector('#passkeys p.muted');
  check((await page.evaluate(() => fetch('/api/v1/users/me/passkeys').then(r => r.json()).then(j => j.data.length))) === 0, 'removed from the account page');
  await signOut(page);
  await page.click('#passkey-signin');
  await page.waitForSelector('#login-msg .msg');
  check((await me(page)) === null, 'the removed passkey no longer signs in');
  await shot(page, 'login-passkey-removed');

  // An admin removes a user's passkeys (a lost device) over the API.
  async function addPasskey(name) {
    await page.goto(`${BASE}/account`);
    await page.waitForSelector('#passkey-form');
    await page.locator('#passkey-form').getByLabel('Name for a new passkey').fill(name);
    await page.click('#passkey-form button[type=submit]');
    await page.waitForSelector(`tr[data-passkey="${name}"]`);
  }
  await page.goto(`${BASE}/login`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.click('#login-form button[type=submit]');
  await page.waitForURL('**/account');
  await addPasskey('Phone');
  const adminLogin = await (await fetch(`${BASE}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: process.env.ADMIN_EMAIL, password: process.env.ADMIN_PASSWORD }) })).json();
  const bearer = { authorization: `Bearer ${adminLogin.data.token}` };
  const users = await (await fetch(`${BASE}/api/v1/admin/users?search=passkey.user`, { headers: bearer })).json();
  const uid = users.data[0].id;
  const removed = await (await fetch(`${BASE}/api/v1/admin/users/${uid}/passkeys`, { method: 'DELETE', headers: bearer })).json();
  check(removed.data.removed === 1, 'an admin removed the passkey');
  check((await page.evaluate(() => fetch('/api/v1/users/me/passkeys').then(r => r.json()).then(j => j.data.length))) === 0, 'the user has none left');
  // One more for the host command (tests/api/browser.rs).
  await addPasskey('Tablet');
  // With two-factor authentication required of everyone, a passkey counts as the second
  // factor: its owner goes on (here an admin, who lifts the requirement again), while an
  // account without one, the built-in admin included, is sent to enrol first.
  const promoted = await fetch(`${BASE}/api/v1/admin/users/${uid}`, { method: 'PUT', headers: { ...bearer, 'content-type': 'application/json' }, body: JSON.stringify({ role: 'admin' }) });
  check(promoted.status === 200, 'the passkey user is made an admin');
  const setRequired = on => fetch(`${BASE}/api/v1/admin/settings`, { method: 'PUT', headers: { ...bearer, 'content-type': 'application/json' }, body: JSON.stringify({ settings: [{ key: 'two_factor_required', value: on }] }) });
  check((await setRequired(true)).status === 200, 'two-factor authentication required of everyone');
  const keysStatus = await page.evaluate(() => fetch('/api/v1/users/me/api-keys').then(r => r.status));
  check(keysStatus === 200, `a passkey counts as the second factor (${keysStatus})`);
  const plain = await (await fetch(`${BASE}/api/v1/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'No Factor', email: 'no.factor@example.com', password: 'cobalt-meadow-18-lark' }) })).json();
  const plainStatus = (await fetch(`${BASE}/api/v1/users/me/api-keys`, { headers: { authorization: `Bearer ${plain.data.token}` } })).status;
  check(plainStatus === 403, `an account without one must enrol first (${plainStatus})`);
  check((await setRequired(false)).status === 403, 'so must the built-in admin, which has none');
  const lifted = await page.evaluate(() => fetch('/api/v1/admin/settings', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ settings: [{ key: 'two_factor_required', value: false }] }) }).then(r => r.status));
  check(lifted === 200, 'the admin whose factor is a passkey lifts the requirement');
  console.log('all passkey flows passed');
} finally {
  await browser.close();
}

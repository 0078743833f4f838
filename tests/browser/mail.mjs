// The email flows of the dashboard in headless Chromium, reading each message from a real
// SMTP server (tests/oidc/smtp.mjs, started here on SMTP_PORT, where Posta's relay points).
// Env: BASE (Posta URL, also its web_url), SMTP_PORT, ADMIN_EMAIL, ADMIN_PASSWORD, OUT
// (screenshot directory). Exits non-zero on the first failed expectation.
import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { check, launch, shot } from './harness.mjs';

const { BASE, SMTP_PORT, ADMIN_EMAIL, ADMIN_PASSWORD } = process.env;
const here = path.dirname(fileURLToPath(import.meta.url));

// The SMTP server: one JSON line per accepted message.
const inbox = [];
const smtp = spawn('node', [path.join(here, '../oidc/smtp.mjs')], {
  env: { ...process.env, PORT: SMTP_PORT }, stdio: ['ignore', 'pipe', 'inherit'],
});
await new Promise((ok, fail) => {
  const lines = readline.createInterface({ input: smtp.stdout });
  lines.on('line', l => {
    if (l.startsWith('port=')) ok();
    else inbox.push(JSON.parse(l));
  });
  smtp.on('exit', code => fail(new Error(`smtp server exited (${code})`)));
});

async function mailTo(to, n = 1) {
  for (let i = 0; i < 500; i++) {
    const got = inbox.filter(m => m.to[0] === to);
    if (got.length >= n) return got[n - 1];
    await new Promise(ok => setTimeout(ok, 20));
  }
  throw new Error(`no message ${n} to ${to}; inbox: ${JSON.stringify(inbox.map(m => [m.to, m.subject]))}`);
}

async function mailWhere(to, pred, what) {
  for (let i = 0; i < 500; i++) {
    const got = inbox.find(m => m.to[0] === to && pred(m));
    if (got) return got;
    await new Promise(ok => setTimeout(ok, 20));
  }
  throw new Error(`no ${what} to ${to}; inbox: ${JSON.stringify(inbox.map(m => [m.to, m.subject]))}`);
}

// The link to `page` in a message: it must open a dashboard page on BASE.
function linkIn(mail, page) {
  const m = mail.text.match(new RegExp(`(\\S+${page}\\?token=\\S+)`));
  if (!m) throw new Error(`no ${page} link in: ${mail.text}`);
  check(m[1].startsWith(`${BASE}${page}?token=`), `the mail links to the dashboard page ${page}`);
  check(mail.html.includes(m[1].replaceAll('&', '&amp;')) || mail.html.includes(m[1]), 'the HTML part has the same link');
  return m[1];
}

const me = page => page.evaluate(() => fetch('/api/v1/users/me').then(r => r.json()).then(j => j.data));

async function signIn(page, email, password) {
  await page.goto(`${BASE}/login`);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.click('#login-form button[type=submit]');
  await page.waitForURL('**/account');
}

const browser = await launch();
try {
  const email = 'mail.user@example.com';
  const password = 'copper-lantern-58-fig';

  // Sign-up, then the verification link.
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await ctx.newPage();
  await page.goto(`${BASE}/register`);
  await page.getByLabel('Name').fill('Mail User');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password (at least 8 characters)').fill(password);
  await page.click('#register-form button[type=submit]');
  await page.waitForURL('**/account');
  await page.waitForSelector('#verify-banner');
  await shot(page, 'verify-banner');
  check((await me(page)).email_verified === false, 'a new account starts unverified, with a banner');
  const verifyLink = linkIn(await mailTo(email), '/auth/verify-email');
  // A mail scanner fetches every link: that must use nothing up.
  check((await fetch(verifyLink)).status === 200, 'a scanner fetching the link gets the page');
  await page.goto(verifyLink);
  await page.waitForSelector('#verify-email');
  check(!(await page.url()).includes('token='), 'the token leaves the address bar once read');
  check((await me(page)).email_verified === false, 'opening the page verifies nothing by itself');
  await shot(page, 'verify-email');
  await page.click('#verify-email');
  await page.waitForSelector('#verify-msg .msg.ok');
  check((await me(page)).email_verified === true, 'confirmed with the button');
  await page.goto(`${BASE}/account`);
  await page.waitForSelector('#profile');
  check(await page.locator('#verify-banner').count() === 0, 'no banner once verified');

  // Email change: a link to the new address; the change happens when it is followed.
  const newEmail = 'mail.user.new@example.com';
  const form = page.locator('#email-change-form');
  await form.getByLabel('New email').fill(newEmail);
  await form.getByLabel('Current password').fill(password);
  await form.locator('button[type=submit]').click();
  await page.waitForSelector('#email-change-msg .msg.ok');
  await shot(page, 'email-change-requested');
  check((await me(page)).email === email, 'the address is unchanged until the link is followed');
  const confirmLink = linkIn(await mailTo(newEmail), '/auth/confirm-email');
  await page.goto(confirmLink);
  await page.click('#confirm-email');
  await page.waitForSelector('#confirm-msg .msg.ok');
  await shot(page, 'confirm-email');
  check((await me(page)).email === newEmail, 'the account uses the new address');
  const notice = await mailWhere(email, m => /address was changed/.test(m.subject), 'change notice');
  check(notice.text.includes(newEmail), 'the old address is told of the change');

  // Forgot password, from the sign-in page.
  await page.goto(`${BASE}/account`);
  await page.click('#signout');
  await page.waitForURL('**/login');
  await page.waitForSelector('#forgot-link');
  await page.click('#forgot-link');
  await page.waitForURL('**/auth/forgot-password');
  await page.getByLabel('Email').fill(newEmail);
  await page.click('#forgot-form button[type=submit]');
  await page.waitForSelector('#forgot-msg .msg.ok');
  await shot(page, 'forgot-password');
  const resetLink = linkIn(await mailWhere(newEmail, m => /reset your password/.test(m.subject), 'reset link'), '/auth/reset-password');
  check((await fetch(resetLink)).status === 200, 'a scanner fetching the reset link uses nothing up');
  await page.goto(resetLink);
  const newPassword = 'saffron-harbour-73-kite';
  await page.getByLabel('New password (at least 8 characters)').fill(newPassword);
  await page.click('#reset-form button[type=submit]');
  await page.waitForSelector('#reset-msg .msg.ok');
  await shot(page, 'reset-password');
  await signIn(page, newEmail, newPassword);
  check(true, 'signed in with the new password');
  await mailWhere(newEmail, m => /password was changed/.test(m.subject), 'reset notice');
  check(true, 'a notice of the reset follows');

  // An admin invites someone from the admin page; they sign up from the mailed link.
  const adm = await browser.newContext({ viewport: { width: 1200, height: 1000 } });
  const ap = await adm.newPage();
  await signIn(ap, ADMIN_EMAIL, ADMIN_PASSWORD);
  await ap.goto(`${BASE}/admin`);
  await ap.waitForSelector('#settings-form button');
  check(await ap.locator('#mail-off').count() === 0, 'no mail-off note with a relay');
  const invitee = 'invitee@example.com';
  const inv = ap.locator('#invite-form');
  await inv.getByLabel('Email').fill(invitee);
  await inv.locator('button[type=submit]').click();
  await ap.waitForSelector(`tr[data-invite="${invitee}"]`);
  await shot(ap, 'admin-invitations');
  const inviteLink = linkIn(await mailTo(invitee), '/auth/invitation');
  const guest = await browser.newContext();
  const gp = await guest.newPage();
  await gp.goto(inviteLink);
  await gp.waitForSelector('#invitation-form');
  check((await gp.textContent('#invitation-form')).includes(invitee), 'the sign-up page shows the invited address');
  await shot(gp, 'invitation');
  await gp.getByLabel('Name').fill('Invited Person');
  await gp.getByLabel('Password (at least 8 characters)').fill('marble-orchard-19-wren');
  await gp.click('#invitation-form button[type=submit]');
  await gp.waitForURL('**/account');
  await gp.waitForSelector('#profile');
  const invited = await me(gp);
  check(invited.email === invitee && invited.email_verified === true, 'the invited account exists, verified');
  check(await gp.locator('#verify-banner').count() === 0, 'no verification banner for the invited account');
  await ap.reload();
  await ap.waitForSelector('#invitations');
  check(await ap.locator(`tr[data-invite="${invitee}"]`).count() === 0, 'the used invitation leaves the list');

  // The admin's reset-link button: a link shown (and mailed) for a user who is locked out.
  await ap.fill('#user-search', 'invitee');
  await ap.click('#users form[role=search] button');
  const before = inbox.filter(m => m.to[0] === invitee).length;
  await ap.click(`tr[data-email="${invitee}"] button:has-text("Reset link")`);
  await ap.waitForSelector('code.reset-link');
  const shown = (await ap.textContent('code.reset-link')).trim();
  await shot(ap, 'admin-reset-link');
  const mailed = linkIn(await mailTo(invitee, before + 1), '/auth/reset-password');
  check(shown === mailed, 'the link shown to the admin is the one mailed');
  await gp.goto(shown);
  await gp.getByLabel('New password (at least 8 characters)').fill('quartz-meadow-64-lynx');
  await gp.click('#reset-form button[type=submit]');
  await gp.waitForSelector('#reset-msg .msg.ok');
  await signIn(gp, invitee, 'quartz-meadow-64-lynx');
  check(true, 'the invited user signs in with the password set from the admin link');
  console.log('all mail flows passed');
} finally {
  await browser.close();
  smtp.kill();
}

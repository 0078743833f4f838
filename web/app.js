// Posta dashboard: plain JavaScript, no framework, no inline script (strict CSP).
// Sessions ride on the HttpOnly cookie set at sign-in; every API call sends
// X-Requested-With, which the server requires of cookie sessions (CSRF defence).
'use strict';

const $app = () => document.getElementById('app');

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

let uid = 0;
function field(label, attrs) {
  const id = attrs.id || `f${++uid}`;
  const input = attrs.type === 'select'
    ? h('select', { id, name: attrs.name }, ...(attrs.options || []).map(o => h('option', { value: o, selected: o === attrs.value }, o)))
    : attrs.type === 'textarea'
      ? h('textarea', { id, name: attrs.name, placeholder: attrs.placeholder })
      : h('input', { id, ...attrs });
  return [h('label', { for: id }, label), input];
}

async function api(method, path, body) {
  const opts = { method, credentials: 'same-origin', headers: { 'X-Requested-With': 'posta' } };
  if (body !== undefined) { opts.headers['Content-Type'] = 'application/json'; opts.body = JSON.stringify(body); }
  const r = await fetch(path, opts);
  let json = null;
  try { json = await r.json(); } catch (_) { /* empty body */ }
  return { status: r.status, ok: r.ok, json, retryAfter: r.headers.get('Retry-After') };
}

function errorText(res) {
  if (res.status === 429) {
    const s = parseInt(res.retryAfter || '60', 10);
    return `Too many attempts. Try again in ${s >= 90 ? Math.ceil(s / 60) + ' minutes' : s + ' seconds'}.`;
  }
  return (res.json && res.json.error && res.json.error.message) || `Request failed (${res.status})`;
}

function msg(text, kind) { return h('p', { class: `msg ${kind || 'error'}`, role: kind === 'ok' ? 'status' : 'alert' }, text); }

function show(container, node) { container.replaceChildren(...(node ? [node] : [])); }

function fmt(t) { return t ? new Date(t).toLocaleString() : '—'; }

function formData(form) {
  const o = {};
  for (const el of form.elements) if (el.name) o[el.name] = el.type === 'checkbox' ? el.checked : el.value;
  return o;
}

async function copy(text, button) {
  try { await navigator.clipboard.writeText(text); button.textContent = 'Copied'; } catch (_) { button.textContent = 'Select and copy manually'; }
}

function go(path) { window.location.assign(path); }

let me = null;

async function loadMe() {
  const r = await api('GET', '/api/v1/users/me');
  me = r.ok ? r.json.data : null;
  return r;
}

function renderNav() {
  const nav = document.getElementById('nav');
  if (!me) { nav.replaceChildren(h('a', { href: '/login' }, 'Sign in')); return; }
  nav.replaceChildren(...[
    h('a', { href: '/account' }, 'Account'),
    me.role === 'admin' ? h('a', { href: '/admin' }, 'Admin') : null,
    h('span', { class: 'muted' }, me.email),
    h('button', { class: 'secondary', id: 'signout', onclick: signOut }, 'Sign out')].filter(Boolean));
}

async function signOut() {
  await api('POST', '/api/v1/users/me/sessions/logout');
  go('/login');
}

// ---------- Sign in / register ----------

const SSO_ERRORS = {
  invalid_state: 'The sign-in attempt expired or was not started here. Please try again.',
  exchange_failed: 'The identity provider sign-in could not be completed.',
  email_not_verified: 'Your identity provider has not verified your email address.',
  domain_not_allowed: 'Your email domain is not allowed to sign in here.',
  registration_disabled: 'No account exists for this identity and sign-up is closed.',
  account_disabled: 'This account is disabled.',
  provider_error: 'The identity provider reported an error.',
};

// Passkeys: the server's options in, `PublicKeyCredential.toJSON()` out (WebAuthn Level 3,
// in current browsers); `null` and a message when the browser or the person says no.
function passkeysSupported() {
  return window.PublicKeyCredential && PublicKeyCredential.parseRequestOptionsFromJSON && PublicKeyCredential.parseCreationOptionsFromJSON;
}
async function passkeyAssertion(started, out) {
  try {
    const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(started.options);
    const cred = await navigator.credentials.get({ publicKey });
    return cred.toJSON();
  } catch (e) {
    out.append(msg(e && e.name === 'NotAllowedError' ? 'The passkey prompt was closed or timed out.' : `Passkey failed: ${e && e.message}`));
    return null;
  }
}

async function pageLogin() {
  const params = new URLSearchParams(location.search);
  const out = h('div', { id: 'login-msg', 'aria-live': 'polite' });
  if (params.get('error')) out.append(msg(SSO_ERRORS[params.get('error')] || 'Sign-in failed.'));
  // The second step, after a password (or an identity provider's sign-in).
  let pendingToken = null;
  const passkeyStep = h('div', { id: 'passkey-step', class: 'hidden' },
    h('button', { type: 'button', id: 'use-passkey', onclick: async () => {
      out.replaceChildren();
      const s = await api('POST', '/api/v1/auth/login/passkey/start', { pending_token: pendingToken });
      if (!s.ok) { out.append(msg(errorText(s))); return; }
      const credential = await passkeyAssertion(s.json.data, out);
      if (!credential) return;
      done(await api('POST', '/api/v1/auth/login/passkey/finish', { pending_token: pendingToken, ceremony: s.json.data.ceremony, credential }));
    } }, 'Use a passkey'));
  const codeStep = h('form', { id: 'code-form', class: 'hidden', onsubmit: async e => {
    e.preventDefault();
    await submit({ pending_token: pendingToken, two_factor_code: e.target.elements.code.value.trim() });
  } },
  h('p', {}, 'Enter the 6-digit code from your authenticator app, or a recovery code.'),
  ...field('Authentication code', { name: 'code', type: 'text', autocomplete: 'one-time-code', inputmode: 'text', required: true }),
  h('button', { type: 'submit' }, 'Verify'));
  const pwStep = h('form', { id: 'login-form', onsubmit: async e => {
    e.preventDefault();
    const d = formData(e.target);
    await submit({ email: d.email, password: d.password });
  } },
  ...field('Email', { name: 'email', type: 'email', autocomplete: 'username webauthn', required: true }),
  ...field('Password', { name: 'password', type: 'password', autocomplete: 'current-password', required: true }),
  h('button', { type: 'submit' }, 'Sign in'));
  const passkeyLogin = h('p', { id: 'passkey-login', class: 'hidden' },
    h('button', { type: 'button', class: 'secondary', id: 'passkey-signin', onclick: async () => {
      out.replaceChildren();
      const s = await api('POST', '/api/v1/auth/passkey/start');
      if (!s.ok) { out.append(msg(errorText(s))); return; }
      const credential = await passkeyAssertion(s.json.data, out);
      if (!credential) return;
      done(await api('POST', '/api/v1/auth/passkey/finish', { ceremony: s.json.data.ceremony, credential }));
    } }, 'Sign in with a passkey'));

  function secondStep(token, methods) {
    pendingToken = token;
    pwStep.classList.add('hidden'); passkeyLogin.classList.add('hidden');
    if (methods.includes('passkey') && passkeysSupported()) passkeyStep.classList.remove('hidden');
    if (methods.includes('totp')) { codeStep.classList.remove('hidden'); codeStep.elements.code.focus(); }
  }

  function done(r) {
    if (r.ok) { go(r.json.data.two_factor_setup_required ? '/account#2fa' : '/account'); return; }
    if (r.status === 403) out.append(msg('This account is disabled. Contact your administrator.'));
    else if (r.status === 401) out.append(msg(pendingToken ? 'That did not work (a wrong or used code, or another passkey).' : 'Invalid email or password, or an unknown passkey.'));
    else out.append(msg(errorText(r)));
  }

  async function submit(body) {
    out.replaceChildren();
    const r = await api('POST', '/api/v1/auth/login', body);
    if (r.status === 401 && r.json && r.json.data && r.json.data.requires_2fa) {
      secondStep(r.json.data.pending_token, r.json.data.methods || ['totp']);
      return;
    }
    done(r);
  }

  const sso = h('div', { id: 'sso' });
  const reg = h('p', { id: 'register-link' });
  show($app(), h('section', { class: 'card' }, h('h1', {}, 'Sign in'), out, pwStep, codeStep, passkeyStep, passkeyLogin, sso, reg));
  // An identity provider's sign-in that still needs this account's second factor.
  const frag = new URLSearchParams(location.hash.slice(1));
  if (params.get('requires_2fa') && frag.get('pending_token')) {
    secondStep(frag.get('pending_token'), (params.get('methods') || 'totp').split(','));
    history.replaceState(null, '', location.pathname);
  } else {
    pwStep.elements.email.focus();
  }
  const [st, prov] = await Promise.all([api('GET', '/api/v1/auth/registration-status'), api('GET', '/api/v1/auth/oauth/providers')]);
  if (st.ok && st.json.data.passkeys_enabled && passkeysSupported() && !pendingToken) passkeyLogin.classList.remove('hidden');
  if (st.ok && st.json.data.registration_enabled) reg.append('No account? ', h('a', { href: '/register' }, 'Create one'));
  if (st.ok && st.json.data.password_reset_enabled) reg.append(' ', h('a', { id: 'forgot-link', href: '/auth/forgot-password' }, 'Forgot your password?'));
  if (prov.ok && prov.json.data.providers.length) {
    sso.append(h('p', { class: 'muted' }, 'Or continue with'));
    for (const p of prov.json.data.providers) {
      sso.append(h('a', { class: 'button secondary', href: `/api/v1/auth/oauth/${encodeURIComponent(p.slug)}/authorize` }, p.name));
    }
  }
}

async function pageRegister() {
  const out = h('div', { 'aria-live': 'polite' });
  const st = await api('GET', '/api/v1/auth/registration-status');
  if (st.ok && !st.json.data.registration_enabled) {
    show($app(), h('section', {}, h('h1', {}, 'Create an account'), msg('Registration is closed.'), h('a', { href: '/login' }, 'Sign in')));
    return;
  }
  const form = h('form', { id: 'register-form', onsubmit: async e => {
    e.preventDefault();
    out.replaceChildren();
    const r = await api('POST', '/api/v1/auth/register', formData(e.target));
    if (r.ok) go('/account'); else out.append(msg(errorText(r)));
  } },
  ...field('Name', { name: 'name', type: 'text', autocomplete: 'name', required: true }),
  ...field('Email', { name: 'email', type: 'email', autocomplete: 'email', required: true }),
  ...field('Password (at least 8 characters)', { name: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: 8 }),
  h('button', { type: 'submit' }, 'Create account'));
  show($app(), h('section', {}, h('h1', {}, 'Create an account'), out, form, h('p', {}, h('a', { href: '/login' }, 'Already have an account? Sign in'))));
}

// ---------- Pages opened from mailed links: they show what will happen, and only a click
// (a POST) uses the token, so a mail scanner that fetches every link uses nothing up. ----------

function linkToken() {
  const t = new URLSearchParams(location.search).get('token') || '';
  // Out of the address bar and history once read.
  history.replaceState(null, '', location.pathname);
  return t;
}

async function pageVerifyEmail() {
  const token = linkToken();
  const out = h('div', { id: 'verify-msg', 'aria-live': 'polite' });
  const btn = h('button', { id: 'verify-email', onclick: async () => {
    btn.disabled = true; out.replaceChildren();
    const r = await api('POST', '/api/v1/auth/verify-email', { token });
    out.append(r.ok ? msg('Your email address is confirmed. Thank you.', 'ok') : msg(errorText(r)));
    if (!r.ok) btn.disabled = false;
  } }, 'Confirm my email address');
  show($app(), h('section', { class: 'card' }, h('h1', {}, 'Confirm your email address'),
    h('p', {}, 'Press the button to confirm that this address is yours.'), btn, out, h('p', {}, h('a', { href: '/login' }, 'Sign in'))));
}

async function pageInvitation() {
  const token = linkToken();
  const out = h('div', { id: 'invite-msg', 'aria-live': 'polite' });
  const r = await api('GET', `/api/v1/auth/invitations/${encodeURIComponent(token)}`);
  if (!r.ok) { show($app(), h('section', { class: 'card' }, h('h1', {}, 'Invitation'), msg(errorText(r)), h('a', { href: '/login' }, 'Sign in'))); return; }
  const inv = r.json.data;
  const form = h('form', { id: 'invitation-form', onsubmit: async e => {
    e.preventDefault(); out.replaceChildren();
    const d = formData(e.target);
    const reg = await api('POST', '/api/v1/auth/register', { name: d.name, password: d.password, invite_token: token });
    if (reg.ok) go('/account'); else out.append(msg(errorText(reg)));
  } },
  h('p', {}, 'Email: ', h('strong', {}, inv.email), inv.role === 'admin' ? ' (administrator)' : ''),
  ...field('Name', { name: 'name', type: 'text', autocomplete: 'name', required: true, value: inv.name || '' }),
  ...field('Password (at least 8 characters)', { name: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: 8 }),
  h('button', { type: 'submit' }, 'Create my account'));
  show($app(), h('section', { class: 'card' }, h('h1', {}, 'You are invited'), out, form));
}

async function pageConfirmEmail() {
  const token = linkToken();
  const out = h('div', { id: 'confirm-msg', 'aria-live': 'polite' });
  const btn = h('button', { id: 'confirm-email', onclick: async () => {
    btn.disabled = true; out.replaceChildren();
    const r = await api('POST', '/api/v1/auth/confirm-email', { token });
    out.append(r.ok ? msg('Your account now uses the new address.', 'ok') : msg(errorText(r)));
  } }, 'Use the new address');
  show($app(), h('section', { class: 'card' }, h('h1', {}, 'Confirm your new email address'),
    h('p', {}, 'Press the button to move your account to this address.'), btn, out, h('p', {}, h('a', { href: '/account' }, 'Your account'))));
}

async function pageForgotPassword() {
  const out = h('div', { id: 'forgot-msg', 'aria-live': 'polite' });
  const form = h('form', { id: 'forgot-form', onsubmit: async e => {
    e.preventDefault(); out.replaceChildren();
    const r = await api('POST', '/api/v1/auth/forgot-password', { email: e.target.elements.email.value });
    out.append(r.ok ? msg('If an account uses this address, a reset link is on its way. Check your mail.', 'ok') : msg(errorText(r)));
  } }, ...field('Email', { name: 'email', type: 'email', autocomplete: 'username', required: true }), h('button', { type: 'submit' }, 'Send a reset link'));
  show($app(), h('section', { class: 'card' }, h('h1', {}, 'Forgot your password?'), out, form, h('p', {}, h('a', { href: '/login' }, 'Back to sign in'))));
}

async function pageResetPassword() {
  const token = linkToken();
  const out = h('div', { id: 'reset-msg', 'aria-live': 'polite' });
  const form = h('form', { id: 'reset-form', onsubmit: async e => {
    e.preventDefault(); out.replaceChildren();
    const r = await api('POST', '/api/v1/auth/reset-password', { token, new_password: e.target.elements.new_password.value });
    if (r.ok) { form.classList.add('hidden'); out.append(msg('Your password is changed. Every session was signed out.', 'ok'), h('a', { href: '/login' }, 'Sign in')); }
    else out.append(msg(errorText(r)));
  } }, ...field('New password (at least 8 characters)', { name: 'new_password', type: 'password', autocomplete: 'new-password', required: true, minlength: 8 }), h('button', { type: 'submit' }, 'Set the new password'));
  show($app(), h('section', { class: 'card' }, h('h1', {}, 'Choose a new password'), out, form));
}

// ---------- Account ----------

async function pageAccount() {
  const r = await loadMe();
  if (!r.ok) { go('/login'); return; }
  renderNav();
  const banner = location.hash === '#2fa' && !me.two_factor_enabled
    ? msg('Your organisation requires two-factor authentication: set it up below to continue.') : null;
  let verify = null;
  const st = await api('GET', '/api/v1/auth/registration-status');
  // Only with a relay configured can a link be sent.
  const mailOn = st.ok && st.json.data.email_enabled;
  if (!me.email_verified) {
    if (mailOn) {
      const vout = h('span', { 'aria-live': 'polite' });
      verify = h('div', { id: 'verify-banner', class: 'msg' },
        me.email_verification_required ? 'Confirm your email address to use your account: ' : 'Your email address is not confirmed yet. ',
        h('button', { class: 'secondary', onclick: async () => {
          const r = await api('POST', '/api/v1/users/me/verify-email/resend');
          vout.replaceChildren(r.ok ? ' A new link is on its way.' : ` ${errorText(r)}`);
        } }, 'Send the link again'), vout);
    }
  }
  show($app(), h('div', {},
    h('h1', {}, `Hello, ${me.name}`),
    banner, verify,
    profileSection(mailOn), passwordSection(), twoFactorSection(), passkeysSection(st.ok && st.json.data.passkeys_enabled), sessionsSection(), keysSection(), ssoSection()));
  if (location.hash === '#2fa') document.getElementById('twofa').scrollIntoView();
}

function profileSection(mailOn) {
  const out = h('div', { 'aria-live': 'polite' });
  const form = h('form', { id: 'profile-form', onsubmit: async e => {
    e.preventDefault(); out.replaceChildren();
    const r = await api('PUT', '/api/v1/users/me', { name: e.target.elements.name.value });
    out.append(r.ok ? msg('Saved.', 'ok') : msg(errorText(r)));
  } }, ...field('Name', { name: 'name', type: 'text', value: me.name, required: true }), h('button', { type: 'submit' }, 'Save'));
  // The change happens only when the link mailed to the new address is followed.
  const eout = h('div', { id: 'email-change-msg', 'aria-live': 'polite' });
  const proof = me.auth_methods.includes('password')
    ? field('Current password', { name: 'current_password', type: 'password', autocomplete: 'current-password', required: true })
    : field('Code from your authenticator app', { name: 'code', type: 'text', autocomplete: 'one-time-code' });
  const emailForm = mailOn ? h('form', { id: 'email-change-form', onsubmit: async e => {
    e.preventDefault(); eout.replaceChildren();
    const r = await api('PUT', '/api/v1/users/me/email', formData(e.target));
    if (r.ok) { eout.append(msg('Check the new address: the change happens when you follow the link mailed there.', 'ok')); e.target.reset(); }
    else eout.append(msg(errorText(r)));
  } }, h('h3', {}, 'Change your email address'), eout,
  ...field('New email', { name: 'email', type: 'email', autocomplete: 'email', required: true }), ...proof,
  h('button', { type: 'submit' }, 'Send a confirmation link')) : null;
  return h('section', { id: 'profile' }, h('h2', {}, 'Profile'),
    h('p', {}, 'Email: ', h('strong', {}, me.email), ' · Role: ', me.role), out, form, emailForm);
}

function passwordSection() {
  if (!me.auth_methods.includes('password')) {
    return h('section', { id: 'password' }, h('h2', {}, 'Password'), h('p', { class: 'muted' }, 'You sign in through an identity provider; this account has no password.'));
  }
  const out = h('div', { 'aria-live': 'polite' });
  const form = h('form', { id: 'password-form', onsubmit: async e => {
    e.preventDefault(); out.replaceChildren();
    const d = formData(e.target);
    const r = await api('PUT', '/api/v1/users/me/password', d);
    if (r.ok) { out.append(msg('Password changed. Your other sessions were signed out.', 'ok')); e.target.reset(); }
    else out.append(msg(errorText(r)));
  } },
  ...field('Current password', { name: 'current_password', type: 'password', autocomplete: 'current-password', required: true }),
  ...field('New password', { name: 'new_password', type: 'password', autocomplete: 'new-password', required: true, minlength: 8 }),
  h('button', { type: 'submit' }, 'Change password'));
  return h('section', { id: 'password' }, h('h2', {}, 'Password'), out, form);
}

function twoFactorSection() {
  const sec = h('section', { id: 'twofa' }, h('h2', {}, 'Two-factor authentication'));
  const out = h('div', { 'aria-live': 'polite' });
  const body = h('div', {});
  sec.append(out, body);
  const enabled = me.two_factor_enabled;
  if (enabled) {
    body.append(h('p', {}, 'Two-factor authentication is ', h('strong', {}, 'on'), '.'),
      h('form', { id: 'disable-2fa-form', onsubmit: async e => {
        e.preventDefault(); out.replaceChildren();
        const r = await api('POST', '/api/v1/users/me/2fa/disable', { code: e.target.elements.code.value.trim() });
        if (r.ok) { await pageAccount(); } else out.append(msg(errorText(r)));
      } }, ...field('Code or recovery code to turn it off', { name: 'code', type: 'text', autocomplete: 'one-time-code', required: true }),
      h('button', { type: 'submit', class: 'danger' }, 'Turn off 2FA')));
    return sec;
  }
  body.append(h('p', {}, 'Protect your account with an authenticator app (Google Authenticator, Aegis, 1Password…).'),
    h('button', { id: 'setup-2fa', onclick: async () => {
      out.replaceChildren();
      const r = await api('POST', '/api/v1/users/me/2fa/setup');
      if (!r.ok) { out.append(msg(errorText(r))); return; }
      const d = r.json.data;
      const verify = h('form', { id: 'verify-2fa-form', onsubmit: async e => {
        e.preventDefault(); out.replaceChildren();
        const v = await api('POST', '/api/v1/users/me/2fa/verify', { code: e.target.elements.code.value.trim() });
        if (!v.ok) { out.append(msg(errorText(v))); return; }
        showRecovery(body, v.json.data.recovery_codes);
      } }, ...field('Code from the app', { name: 'code', type: 'text', inputmode: 'numeric', autocomplete: 'one-time-code', required: true }),
      h('button', { type: 'submit' }, 'Turn on 2FA'));
      show(body, h('div', {},
        h('p', {}, 'Scan this QR code with your app, or enter the secret by hand.'),
        h('img', { class: 'qr', src: d.qr_code, alt: 'QR code for your authenticator app' }),
        h('p', {}, 'Secret: ', h('code', { class: 'secret', id: 'totp-secret' }, d.secret)),
        verify));
      verify.elements.code.focus();
    } }, 'Set up 2FA'));
  return sec;
}

function passkeysSection(enabled) {
  const sec = h('section', { id: 'passkeys' }, h('h2', {}, 'Passkeys'));
  if (!enabled || !passkeysSupported()) {
    sec.append(h('p', { class: 'muted' }, enabled ? 'This browser cannot use passkeys.' : 'Passkeys are not available on this server (it needs an https:// web_url).'));
    return sec;
  }
  const out = h('div', { id: 'passkey-msg', 'aria-live': 'polite' });
  const list = h('div', { class: 'table-wrap' });
  const form = h('form', { id: 'passkey-form', class: 'row', onsubmit: async e => {
    e.preventDefault(); out.replaceChildren();
    const name = e.target.elements.name.value.trim();
    let s = await api('POST', '/api/v1/users/me/passkeys/register/start', {});
    // An older session proves itself again first, as for the other sensitive changes.
    if (s.status === 403 && s.json && s.json.error && s.json.error.code === 'REAUTH_REQUIRED' && me.auth_methods.includes('password')) {
      const current_password = prompt('Confirm with your current password to add a passkey');
      if (current_password === null) return;
      s = await api('POST', '/api/v1/users/me/passkeys/register/start', { current_password });
    }
    if (!s.ok) { out.append(msg(errorText(s))); return; }
    let credential;
    try {
      const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(s.json.data.options);
      credential = (await navigator.credentials.create({ publicKey })).toJSON();
    } catch (err) {
      out.append(msg(err && err.name === 'InvalidStateError' ? 'This authenticator already holds a passkey for your account.'
        : err && err.name === 'NotAllowedError' ? 'The passkey was not created (the prompt was closed or timed out).' : `The passkey was not created: ${err && err.name}: ${err && err.message}`));
      return;
    }
    const r = await api('POST', '/api/v1/users/me/passkeys/register/finish', { name, ceremony: s.json.data.ceremony, credential });
    if (r.ok) { out.append(msg(`Passkey “${r.json.data.name}” added.`, 'ok')); e.target.reset(); load(); } else out.append(msg(errorText(r)));
  } },
  h('div', {}, ...field('Name for a new passkey', { name: 'name', type: 'text', maxlength: 64, placeholder: 'Laptop, phone…' })),
  h('button', { type: 'submit' }, 'Add a passkey'));
  async function load() {
    const r = await api('GET', '/api/v1/users/me/passkeys');
    if (!r.ok) { list.replaceChildren(msg(errorText(r))); return; }
    list.replaceChildren(r.json.data.length ? h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Added'), h('th', {}, 'Last used'), h('th', {}, 'Synced'), h('th', {}, ''))),
      h('tbody', {}, ...r.json.data.map(p => h('tr', { 'data-passkey': p.name },
        h('td', {}, p.name), h('td', {}, fmt(p.created_at)), h('td', {}, fmt(p.last_used_at)), h('td', {}, p.backed_up ? 'yes' : 'no'),
        h('td', {},
          h('button', { class: 'secondary', onclick: async () => {
            const name = prompt('New name for this passkey', p.name);
            if (name === null) return;
            const u = await api('PUT', `/api/v1/users/me/passkeys/${p.id}`, { name });
            out.replaceChildren(u.ok ? msg('Renamed.', 'ok') : msg(errorText(u))); load();
          } }, 'Rename'),
          h('button', { class: 'danger', onclick: async () => {
            if (!confirm(`Remove the passkey “${p.name}”?`)) return;
            const d = await api('DELETE', `/api/v1/users/me/passkeys/${p.id}`);
            out.replaceChildren(d.ok ? msg('Passkey removed.', 'ok') : msg(errorText(d))); load();
          } }, 'Remove')))))) : h('p', { class: 'muted' }, 'No passkeys yet. A passkey signs you in without a password and counts as two-factor authentication.'));
  }
  load();
  sec.append(out, form, list);
  return sec;
}

function showRecovery(body, codes) {
  const text = codes.join('\n');
  const copyBtn = h('button', { class: 'secondary', onclick: () => copy(text, copyBtn) }, 'Copy codes');
  const dl = h('a', { class: 'button secondary', download: 'posta-recovery-codes.txt', href: URL.createObjectURL(new Blob([text + '\n'], { type: 'text/plain' })) }, 'Download');
  show(body, h('div', { id: 'recovery' },
    msg('Two-factor authentication is on.', 'ok'),
    h('p', {}, h('strong', {}, 'Save these recovery codes now. '), 'Each works once if you lose your device. They will not be shown again.'),
    h('ul', { class: 'codes', id: 'recovery-codes' }, ...codes.map(c => h('li', {}, c))),
    copyBtn, dl,
    h('button', { onclick: () => pageAccount() }, 'Done')));
}

function sessionsSection() {
  const sec = h('section', { id: 'sessions' }, h('h2', {}, 'Active sessions'));
  const out = h('div', { 'aria-live': 'polite' });
  const table = h('div', { class: 'table-wrap' });
  sec.append(out, table, h('button', { class: 'secondary', id: 'revoke-others', onclick: async () => {
    const r = await api('POST', '/api/v1/users/me/sessions/revoke-others');
    out.replaceChildren(r.ok ? msg(`Signed out ${r.json.data.revoked} other session(s).`, 'ok') : msg(errorText(r)));
    load();
  } }, 'Sign out everywhere else'));
  async function load() {
    const r = await api('GET', '/api/v1/users/me/sessions');
    if (!r.ok) { table.replaceChildren(msg(errorText(r))); return; }
    table.replaceChildren(h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Address'), h('th', {}, 'Browser'), h('th', {}, 'Signed in'), h('th', {}, 'Expires'), h('th', {}, ''))),
      h('tbody', {}, ...r.json.data.map(s => h('tr', {},
        h('td', {}, s.ip_address), h('td', {}, s.user_agent || '—'), h('td', {}, fmt(s.created_at)), h('td', {}, fmt(s.expires_at)),
        h('td', {}, s.current ? h('strong', {}, 'This session') : h('button', { class: 'secondary', onclick: async () => {
          await api('DELETE', `/api/v1/users/me/sessions/${s.id}`); load();
        } }, 'Sign out')))))));
  }
  load();
  return sec;
}

function keysSection() {
  const sec = h('section', { id: 'api-keys' }, h('h2', {}, 'API keys'));
  const out = h('div', { 'aria-live': 'polite' });
  const list = h('div', { class: 'table-wrap' });
  const form = h('form', { id: 'api-key-form', onsubmit: async e => {
    e.preventDefault(); out.replaceChildren();
    const f = e.target.elements;
    const scopes = ['send', 'read', '*'].filter(s => f[`scope-${s}`].checked);
    const ips = f.allowed_ips.value.split(/[\s,]+/).filter(Boolean);
    const body = { name: f.name.value, scopes, allowed_ips: ips };
    if (f.expires_in_days.value) body.expires_in_days = parseInt(f.expires_in_days.value, 10);
    const r = await api('POST', '/api/v1/users/me/api-keys', body);
    if (!r.ok) { out.append(msg(errorText(r))); return; }
    const key = r.json.data.key;
    const btn = h('button', { class: 'secondary', onclick: () => copy(key, btn) }, 'Copy key');
    out.append(h('div', { class: 'msg ok', id: 'new-key' }, h('p', {}, 'Your new key. Store it now: it will not be shown again.'),
      h('code', { class: 'secret', id: 'new-key-value' }, key), h('br'), btn));
    e.target.reset(); f['scope-send'].checked = true;
    load();
  } },
  ...field('Name', { name: 'name', type: 'text', required: true }),
  ...field('Expires in days (empty: your default from settings; 0: never)', { name: 'expires_in_days', type: 'number', min: 0, max: 3650 }),
  h('fieldset', {}, h('legend', {}, 'Scopes'),
    ...['send', 'read', '*'].map(s => h('label', {}, h('input', { type: 'checkbox', name: `scope-${s}`, checked: s === 'send' }), s === '*' ? 'all (*)' : s))),
  ...field('Allowed IPs or CIDRs (optional, comma separated)', { name: 'allowed_ips', type: 'text', placeholder: '203.0.113.0/24, 2001:db8::/32' }),
  h('button', { type: 'submit' }, 'Create key'));
  async function load() {
    const r = await api('GET', '/api/v1/users/me/api-keys?size=100');
    if (!r.ok) { list.replaceChildren(msg(errorText(r))); return; }
    if (!r.json.data.length) { list.replaceChildren(h('p', { class: 'muted' }, 'No API keys yet.')); return; }
    list.replaceChildren(h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Key'), h('th', {}, 'Scopes'), h('th', {}, 'Last used'), h('th', {}, 'Expires'), h('th', {}, 'Status'), h('th', {}, ''))),
      h('tbody', {}, ...r.json.data.map(k => {
        const expired = k.expires_at && new Date(k.expires_at) < new Date();
        return h('tr', { 'data-key': k.name },
          h('td', {}, k.name), h('td', {}, h('code', {}, `${k.key_prefix}…`)), h('td', {}, k.scopes.join(', ')),
          h('td', {}, fmt(k.last_used_at)), h('td', {}, fmt(k.expires_at)),
          h('td', {}, k.revoked ? 'revoked' : expired ? 'expired' : 'active'),
          h('td', {}, k.revoked || expired
            ? h('button', { class: 'danger', onclick: async () => { await api('DELETE', `/api/v1/users/me/api-keys/${k.id}`); load(); } }, 'Delete')
            : h('button', { class: 'secondary', onclick: async () => { await api('PUT', `/api/v1/users/me/api-keys/${k.id}/revoke`); load(); } }, 'Revoke')));
      }))));
  }
  load();
  sec.append(out, form, h('h3', {}, 'Your keys'), list);
  return sec;
}

function ssoSection() {
  const sec = h('section', { id: 'sso-links' }, h('h2', {}, 'Linked sign-in providers'));
  const out = h('div', { 'aria-live': 'polite' });
  const list = h('div', {});
  sec.append(out, list);
  async function load() {
    const r = await api('GET', '/api/v1/users/me/oauth');
    if (!r.ok) return;
    if (!r.json.data.length) { list.replaceChildren(h('p', { class: 'muted' }, 'None.')); return; }
    list.replaceChildren(h('ul', {}, ...r.json.data.map(l => h('li', {}, `${l.provider_name || l.provider_slug} (${l.email}) `,
      h('button', { class: 'secondary', onclick: async () => {
        const u = await api('DELETE', `/api/v1/users/me/oauth/${l.provider_id}`);
        out.replaceChildren(u.ok ? msg('Unlinked.', 'ok') : msg(errorText(u))); load();
      } }, 'Unlink')))));
  }
  load();
  return sec;
}

// ---------- Admin ----------

async function pageAdmin() {
  const r = await loadMe();
  if (!r.ok) { go('/login'); return; }
  renderNav();
  if (me.role !== 'admin') { show($app(), h('section', {}, h('h1', {}, 'Admin'), msg('Administrators only.'))); return; }
  show($app(), h('div', {}, h('h1', {}, 'Administration'), usersSection(), invitationsSection(), providersSection(), settingsSection(), auditSection()));
}

function invitationsSection() {
  const sec = h('section', { id: 'invitations' }, h('h2', {}, 'Invitations'));
  const out = h('div', { 'aria-live': 'polite' });
  const list = h('div', { class: 'table-wrap' });
  const form = h('form', { id: 'invite-form', class: 'row', onsubmit: async e => {
    e.preventDefault(); out.replaceChildren();
    const d = formData(e.target);
    const r = await api('POST', '/api/v1/admin/invitations', { email: d.email, role: d.role });
    if (!r.ok) { out.append(msg(errorText(r))); return; }
    out.append(r.json.data.link
      ? h('div', { class: 'msg ok', role: 'status' }, `Invitation for ${r.json.data.email}; no mail is configured, so hand over this link: `, h('code', { class: 'invite-link' }, r.json.data.link))
      : msg(`Invitation mailed to ${r.json.data.email}.`, 'ok'));
    e.target.reset(); load();
  } },
  h('div', {}, ...field('Email', { name: 'email', type: 'email', required: true })),
  h('div', {}, h('label', { for: 'invite-role' }, 'Role'), h('select', { id: 'invite-role', name: 'role' }, h('option', { value: 'user' }, 'user'), h('option', { value: 'admin' }, 'admin'))),
  h('button', { type: 'submit' }, 'Invite'));
  async function load() {
    const r = await api('GET', '/api/v1/admin/invitations?size=100');
    if (!r.ok) { list.replaceChildren(msg(errorText(r))); return; }
    list.replaceChildren(r.json.data.length ? h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Email'), h('th', {}, 'Role'), h('th', {}, 'Expires'), h('th', {}, ''))),
      h('tbody', {}, ...r.json.data.map(i => h('tr', { 'data-invite': i.email }, h('td', {}, i.email), h('td', {}, i.role), h('td', {}, fmt(i.expires_at)),
        h('td', {}, h('button', { class: 'secondary', onclick: async () => { await api('DELETE', `/api/v1/admin/invitations/${i.id}`); load(); } }, 'Revoke')))))) : h('p', { class: 'muted' }, 'No pending invitations.'));
  }
  load();
  sec.append(out, form, list);
  return sec;
}

function usersSection() {
  const sec = h('section', { id: 'users' }, h('h2', {}, 'Users'));
  const out = h('div', { 'aria-live': 'polite' });
  const list = h('div', { class: 'table-wrap' });
  let page = 0; let search = '';
  const pager = h('div', {});
  const searchForm = h('form', { class: 'row', role: 'search', onsubmit: e => { e.preventDefault(); search = e.target.elements.q.value; page = 0; load(); } },
    h('div', {}, ...field('Search name or email', { name: 'q', type: 'search', id: 'user-search' })), h('button', { type: 'submit' }, 'Search'));
  const act = async (method, path, body, done) => {
    const r = await api(method, path, body);
    out.replaceChildren(r.ok ? msg(done, 'ok') : msg(errorText(r)));
    load();
  };
  async function load() {
    const r = await api('GET', `/api/v1/admin/users?page=${page}&size=20&search=${encodeURIComponent(search)}`);
    if (!r.ok) { list.replaceChildren(msg(errorText(r))); return; }
    list.replaceChildren(h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Email'), h('th', {}, 'Role'), h('th', {}, 'Status'), h('th', {}, '2FA'), h('th', {}, 'Actions'))),
      h('tbody', {}, ...r.json.data.map(u => h('tr', { 'data-email': u.email },
        h('td', {}, u.name), h('td', {}, u.email),
        h('td', {}, h('select', { 'aria-label': `Role of ${u.email}`, onchange: e => act('PUT', `/api/v1/admin/users/${u.id}`, { role: e.target.value }, 'Role changed.') },
          ...['user', 'admin'].map(o => h('option', { value: o, selected: o === u.role }, o)))),
        h('td', {}, u.scheduled_deletion_at ? `deleted ${fmt(u.scheduled_deletion_at)}` : (u.active ? 'active' : 'disabled')), h('td', {}, u.two_factor_enabled ? 'on' : 'off'),
        h('td', {},
          h('button', { class: 'secondary', onclick: () => act('PUT', `/api/v1/admin/users/${u.id}`, { active: !u.active }, u.active ? 'User disabled.' : 'User enabled.') }, u.active ? 'Disable' : 'Enable'),
          u.two_factor_enabled ? h('button', { class: 'secondary', onclick: () => act('DELETE', `/api/v1/admin/users/${u.id}/2fa`, undefined, '2FA turned off.') }, 'Reset 2FA') : null,
          h('button', { class: 'secondary', onclick: () => { if (confirm(`Remove every passkey of ${u.email} (a lost device)?`)) act('DELETE', `/api/v1/admin/users/${u.id}/passkeys`, undefined, 'Passkeys removed.'); } }, 'Remove passkeys'),
          h('button', { class: 'secondary', onclick: () => act('POST', `/api/v1/admin/users/${u.id}/revoke-sessions`, undefined, 'Sessions ended.') }, 'End sessions'),
          h('button', { class: 'secondary', onclick: async () => {
            const r = await api('POST', `/api/v1/admin/users/${u.id}/reset-link`);
            out.replaceChildren(r.ok
              ? h('div', { class: 'msg ok', role: 'status' }, `One-time reset link for ${u.email} (until ${fmt(r.json.data.expires_at)}${r.json.data.mailed ? '; also mailed' : ''}): `, h('code', { class: 'reset-link' }, r.json.data.link))
              : msg(errorText(r)));
          } }, 'Reset link'),
          u.scheduled_deletion_at
            ? h('button', { class: 'secondary', onclick: () => act('POST', `/api/v1/admin/users/${u.id}/cancel-deletion`, undefined, 'Deletion cancelled; user reactivated.') }, 'Cancel deletion')
            : h('button', { class: 'danger', onclick: () => { if (confirm(`Delete ${u.email}? The account is disabled now and deleted after the grace period.`)) act('DELETE', `/api/v1/admin/users/${u.id}`, undefined, 'User disabled; deletion scheduled.'); } }, 'Delete'),
          !u.active ? h('button', { class: 'danger', onclick: () => { if (confirm(`Delete ${u.email} now? This cannot be undone.`)) act('DELETE', `/api/v1/admin/users/${u.id}/force`, undefined, 'User deleted.'); } }, 'Delete now') : null))))));
    const p = r.json.pageable;
    pager.replaceChildren(h('span', { class: 'muted' }, `Page ${p.current_page + 1} of ${Math.max(p.total_pages, 1)} · ${p.total_elements} users `),
      h('button', { class: 'secondary', disabled: page <= 0, onclick: () => { page--; load(); } }, 'Previous'),
      h('button', { class: 'secondary', disabled: page + 1 >= p.total_pages, onclick: () => { page++; load(); } }, 'Next'));
  }
  const create = h('form', { id: 'create-user-form', onsubmit: async e => {
    e.preventDefault();
    const r = await api('POST', '/api/v1/admin/users', formData(e.target));
    out.replaceChildren(r.ok ? msg('User created.', 'ok') : msg(errorText(r)));
    if (r.ok) { e.target.reset(); load(); }
  } }, h('h3', {}, 'Create a user'),
  ...field('Name', { name: 'name', type: 'text', required: true }),
  ...field('Email', { name: 'email', type: 'email', required: true }),
  ...field('Password', { name: 'password', type: 'password', autocomplete: 'new-password', required: true }),
  ...field('Role', { name: 'role', type: 'select', options: ['user', 'admin'], value: 'user' }),
  h('button', { type: 'submit' }, 'Create user'));
  load();
  sec.append(out, searchForm, list, pager, create);
  return sec;
}

function providersSection() {
  const sec = h('section', { id: 'providers' }, h('h2', {}, 'Sign-in providers (OAuth / OIDC)'));
  const out = h('div', { 'aria-live': 'polite' });
  const list = h('div', { class: 'table-wrap' });
  let editing = null;
  const fields = ['name', 'slug', 'client_id', 'client_secret', 'issuer', 'auth_url', 'token_url', 'userinfo_url', 'scopes', 'allowed_domains'];
  const form = h('form', { id: 'provider-form', onsubmit: async e => {
    e.preventDefault();
    const d = formData(e.target);
    const body = { type: d.type, auto_register: d.auto_register, enabled: d.enabled };
    for (const f of fields) if (d[f] !== '' || editing) body[f] = d[f];
    if (editing && !d.client_secret) delete body.client_secret;
    if (!editing) for (const f of ['issuer', 'auth_url', 'token_url', 'userinfo_url', 'scopes']) if (!body[f]) delete body[f];
    body.allowed_domains = (d.allowed_domains || '').split(/[\s,]+/).filter(Boolean);
    const r = editing ? await api('PUT', `/api/v1/admin/oauth/providers/${editing}`, body) : await api('POST', '/api/v1/admin/oauth/providers', body);
    out.replaceChildren(r.ok ? msg('Provider saved.', 'ok') : msg(errorText(r)));
    if (r.ok) { editing = null; e.target.reset(); load(); }
  } }, h('h3', {}, 'Add or edit a provider'),
  ...field('Name', { name: 'name', type: 'text' }), ...field('Slug (used in URLs)', { name: 'slug', type: 'text' }),
  ...field('Type', { name: 'type', type: 'select', options: ['oidc', 'google'], value: 'oidc' }),
  ...field('Client ID', { name: 'client_id', type: 'text' }),
  ...field('Client secret (write-only; leave empty to keep)', { name: 'client_secret', type: 'password', autocomplete: 'off' }),
  ...field('Issuer (OIDC discovery)', { name: 'issuer', type: 'text' }),
  ...field('Authorization URL (optional)', { name: 'auth_url', type: 'text' }),
  ...field('Token URL (optional)', { name: 'token_url', type: 'text' }),
  ...field('Userinfo URL (optional)', { name: 'userinfo_url', type: 'text' }),
  ...field('Scopes', { name: 'scopes', type: 'text', placeholder: 'openid email profile' }),
  ...field('Allowed email domains (optional)', { name: 'allowed_domains', type: 'text' }),
  h('label', {}, h('input', { type: 'checkbox', name: 'auto_register', checked: true }), ' Create accounts for new users'),
  h('label', {}, h('input', { type: 'checkbox', name: 'enabled', checked: true }), ' Enabled'),
  h('button', { type: 'submit' }, 'Save provider'));
  async function load() {
    const r = await api('GET', '/api/v1/admin/oauth/providers');
    if (!r.ok) { list.replaceChildren(msg(errorText(r))); return; }
    if (!r.json.data.length) { list.replaceChildren(h('p', { class: 'muted' }, 'No providers configured.')); return; }
    list.replaceChildren(h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Slug'), h('th', {}, 'Type'), h('th', {}, 'Issuer'), h('th', {}, 'Enabled'), h('th', {}, ''))),
      h('tbody', {}, ...r.json.data.map(p => h('tr', {}, h('td', {}, p.name), h('td', {}, p.slug), h('td', {}, p.type), h('td', {}, p.issuer || p.auth_url || ''), h('td', {}, p.enabled ? 'yes' : 'no'),
        h('td', {}, h('button', { class: 'secondary', onclick: () => {
          editing = p.id;
          for (const f of fields) form.elements[f].value = f === 'allowed_domains' ? p.allowed_domains.join(', ') : f === 'client_secret' ? '' : (p[f] || '');
          form.elements.type.value = p.type; form.elements.auto_register.checked = p.auto_register; form.elements.enabled.checked = p.enabled;
          form.elements.name.focus();
        } }, 'Edit'), h('button', { class: 'danger', onclick: async () => {
          if (!confirm(`Remove ${p.name}? Users lose this way to sign in.`)) return;
          const d = await api('DELETE', `/api/v1/admin/oauth/providers/${p.id}`);
          out.replaceChildren(d.ok ? msg('Provider removed.', 'ok') : msg(errorText(d))); load();
        } }, 'Delete')))))));
  }
  load();
  sec.append(out, list, form);
  return sec;
}

function settingsSection() {
  const sec = h('section', { id: 'settings' }, h('h2', {}, 'Platform settings'));
  const out = h('div', { 'aria-live': 'polite' });
  const form = h('form', { id: 'settings-form' });
  sec.append(out, form);
  (async () => {
    const [r, st] = await Promise.all([api('GET', '/api/v1/admin/settings'), api('GET', '/api/v1/auth/registration-status')]);
    if (!r.ok) { out.append(msg(errorText(r))); return; }
    if (st.ok && !st.json.data.email_enabled) {
      out.append(h('p', { id: 'mail-off', class: 'muted' }, 'No outgoing mail is configured (smtp_host): email verification, password reset by mail and the removal of unverified accounts are off until it is.'));
    }
    const items = r.json.data;
    form.replaceChildren(...items.flatMap(s => s.type === 'bool'
      ? [h('label', {}, h('input', { type: 'checkbox', name: s.key, checked: s.value === 'true' }), ` ${s.key.replaceAll('_', ' ')}`)]
      : field(s.key.replaceAll('_', ' '), { name: s.key, type: s.type === 'int' ? 'number' : 'text', value: s.value })),
    h('button', { type: 'submit' }, 'Save settings'));
    form.onsubmit = async e => {
      e.preventDefault();
      const d = formData(form);
      const settings = items.map(s => ({ key: s.key, type: s.type, value: s.type === 'bool' ? String(d[s.key]) : String(d[s.key]) }));
      const u = await api('PUT', '/api/v1/admin/settings', { settings });
      out.replaceChildren(u.ok ? msg('Settings saved.', 'ok') : msg(errorText(u)));
    };
  })();
  return sec;
}

function auditSection() {
  const sec = h('section', { id: 'audit' }, h('h2', {}, 'Audit log'));
  const list = h('div', { class: 'table-wrap' });
  const pager = h('div', {});
  let page = 0; let type = ''; let user = ''; let category = '';
  const filters = h('form', { class: 'row', onsubmit: e => { e.preventDefault(); category = e.target.elements.category.value; type = e.target.elements.type.value; user = e.target.elements.user_id.value; page = 0; load(); } },
    h('div', {}, h('label', { for: 'ev-category' }, 'Category'), h('select', { id: 'ev-category', name: 'category' }, ...['', 'user', 'admin', 'security'].map(c => h('option', { value: c }, c || 'all')))),
    h('div', {}, ...field('Event type (e.g. login, login.failure)', { name: 'type', type: 'text' })),
    h('div', {}, ...field('User id', { name: 'user_id', type: 'text' })),
    h('button', { type: 'submit' }, 'Filter'));
  async function load() {
    const q = new URLSearchParams({ page, size: 25 });
    if (category) q.set('category', category); if (type) q.set('type', type); if (user) q.set('user_id', user);
    const r = await api('GET', `/api/v1/admin/events?${q}`);
    if (!r.ok) { list.replaceChildren(msg(errorText(r))); return; }
    list.replaceChildren(h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Time'), h('th', {}, 'Category'), h('th', {}, 'Event'), h('th', {}, 'By'), h('th', {}, 'Email'), h('th', {}, 'Address'), h('th', {}, 'What'))),
      h('tbody', {}, ...r.json.data.map(e => h('tr', {}, h('td', {}, fmt(e.created_at)), h('td', {}, e.category), h('td', {}, e.type), h('td', {}, e.actor_name || ''), h('td', {}, e.metadata.email || ''), h('td', {}, e.client_ip || ''), h('td', {}, e.message))))));
    const p = r.json.pageable;
    pager.replaceChildren(h('span', { class: 'muted' }, `Page ${p.current_page + 1} of ${Math.max(p.total_pages, 1)} `),
      h('button', { class: 'secondary', disabled: page <= 0, onclick: () => { page--; load(); } }, 'Newer'),
      h('button', { class: 'secondary', disabled: page + 1 >= p.total_pages, onclick: () => { page++; load(); } }, 'Older'));
  }
  load();
  sec.append(filters, list, pager);
  return sec;
}

// Where SSO lands (the session cookie is set): on to the account page. A `?token=` (only with
// POSTA_OAUTH_TOKEN_IN_URL, for another dashboard) is dropped from the address bar and history.
async function pageOauthCallback() {
  history.replaceState(null, '', location.pathname);
  const r = await api('GET', '/api/v1/users/me');
  location.replace(r.ok ? '/account' : '/login?error=sso_failed');
}

const PAGES = { '/login': pageLogin, '/register': pageRegister, '/account': pageAccount, '/admin': pageAdmin, '/auth/oauth/callback': pageOauthCallback,
  '/auth/verify-email': pageVerifyEmail, '/auth/invitation': pageInvitation, '/auth/confirm-email': pageConfirmEmail, '/auth/forgot-password': pageForgotPassword, '/auth/reset-password': pageResetPassword };

document.addEventListener('DOMContentLoaded', () => {
  const page = PAGES[location.pathname] || pageLogin;
  if (page !== pageAccount && page !== pageAdmin && page !== pageOauthCallback) renderNav();
  page().catch(err => show($app(), msg(`Something went wrong: ${err}`)));
});

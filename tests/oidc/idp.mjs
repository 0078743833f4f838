// A real OpenID Provider for Posta's SSO tests (oidc-provider, test-only; never shipped).
// Env: REDIRECT_URIS (comma list). Prints "issuer=<url>" once listening on 127.0.0.1:0.
// Accounts: any login is accepted with any password (dev interactions). The login becomes
// the subject; the email is the login (or <login>@example.com), verified unless the login
// starts with "unverified"; a login starting with "silent" gets no email_verified claim.
import http from 'node:http';
import Provider from 'oidc-provider';

const redirectUris = (process.env.REDIRECT_URIS || '').split(',').filter(Boolean);
const server = http.createServer();

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: 'posta',
      client_secret: 'posta-test-client-secret',
      redirect_uris: redirectUris,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    async findAccount(ctx, id) {
      return {
        accountId: id,
        async claims() {
          const email = id.includes('@') ? id : `${id}@example.com`;
          const claims = { sub: id, email, name: `Test ${id}` };
          if (!id.startsWith('silent')) claims.email_verified = !id.startsWith('unverified');
          return claims;
        },
      };
    },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    features: { devInteractions: { enabled: true } },
    pkce: { required: () => true },
    cookies: { keys: ['posta-test-idp-cookie-key'] },
  });
  server.on('request', provider.callback());
  process.stdout.write(`issuer=${issuer}\n`);
});

process.on('SIGTERM', () => process.exit(0));
process.stdout.on('error', () => {});

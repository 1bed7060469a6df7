// A certified OpenID Connect provider (panva's oidc-provider) for the single sign-on tests.
//
//   node provider.mjs <oidc-provider package folder> [issuer host name]
//
// Listens on a free port of 127.0.0.1, with issuer http://<host>:<port> (the host name defaults
// to 127.0.0.1; `localhost` makes the provider another site than a server on 127.0.0.1), and prints
// `ready <issuer>` once it answers. One confidential client, `latchkey` with the secret
// `latchkey-test-secret`, may be sent back to any loopback `/ui/sso/callback` (each test server
// has its own port). The development login page takes any password; the login name picks the
// person: admin, viewer or nogroup (any other name is a person without groups too).
import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const pkg = process.argv[2];
if (!pkg) {
  console.error('usage: node provider.mjs <path to node_modules/oidc-provider>');
  process.exit(2);
}
const { default: Provider } = await import(pathToFileURL(path.join(pkg, 'lib', 'index.js')).href);

const people = {
  admin: { name: 'Ada Admin', email: 'ada@example.com', groups: ['latchkey:acme:admin', 'latchkey:admin', 'staff'] },
  viewer: { name: 'Vic Viewer', email: 'vic@example.com', groups: ['latchkey:acme:viewer'] },
  nogroup: { name: 'Nora Nogroup', email: 'nora@example.com', groups: ['staff'] },
};

function person(id) {
  return people[id] ?? { name: id, email: `${id}@example.com`, groups: [] };
}

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const host = process.argv[3] || '127.0.0.1';
const issuer = `http://${host}:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'latchkey',
    client_secret: 'latchkey-test-secret',
    redirect_uris: ['http://127.0.0.1/ui/sso/callback'],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  scopes: ['openid', 'profile', 'email', 'groups'],
  cookies: { keys: ['oidc-test-cookie-key'] },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    const p = person(id);
    return {
      accountId: id,
      async claims() {
        return { sub: id, name: p.name, email: p.email, email_verified: true, groups: p.groups };
      },
    };
  },
  // Latchkey is a first-party client: every sign-in is granted what it asks for, without a
  // consent page.
  async loadExistingGrant(ctx) {
    const id = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (id) {
      return ctx.oidc.provider.Grant.find(id);
    }
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope(ctx.oidc.params.scope);
    await grant.save();
    return grant;
  },
});

// Every test server listens on its own loopback port: any of them may be the callback.
provider.Client.prototype.redirectUriAllowed = function allowed(uri) {
  try {
    const u = new URL(uri);
    return u.protocol === 'http:' && u.hostname === '127.0.0.1' && u.pathname === '/ui/sso/callback';
  } catch {
    return false;
  }
};
provider.on('server_error', (ctx, err) => console.error('server_error', err));

server.on('request', provider.callback());
console.log(`ready ${issuer}`);

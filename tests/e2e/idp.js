// A real OpenID provider for the SSO tests: the certified `oidc-provider`
// package, in this process, on a free loopback port. Accounts live in a
// plain object the tests change (e.g. to take someone out of a group); the
// provider reads it at every sign-in. Its built-in log-in form accepts any
// password for a known account id.
import crypto from 'node:crypto';
import http from 'node:http';
import Provider from 'oidc-provider';

export const CLIENT_ID = 'pliuz-e2e';
export const CLIENT_SECRET = crypto.randomBytes(24).toString('base64url');

export class TestIdp {
  constructor(port) {
    this.port = port;
    this.issuer = `http://127.0.0.1:${port}`;
    /** accountId -> claims (email, email_verified, groups). */
    this.accounts = {};
    this.server = null;
  }

  async start(redirectBase) {
    const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'e2e', use: 'sig', alg: 'RS256' };
    const accounts = this.accounts;
    this.provider = new Provider(this.issuer, {
      clients: [{
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        redirect_uris: [`${redirectBase}/login/oidc/callback`],
        post_logout_redirect_uris: [`${redirectBase}/login?notice=logged_out`],
        response_types: ['code'],
        grant_types: ['authorization_code'],
        token_endpoint_auth_method: 'client_secret_basic',
      }],
      jwks: { keys: [jwk] },
      cookies: { keys: [crypto.randomBytes(16).toString('hex')] },
      claims: { openid: ['sub'], email: ['email', 'email_verified'], groups: ['groups'] },
      scopes: ['openid', 'email', 'groups'],
      // Put the scopes' claims into the ID token (Pliuz reads groups there).
      conformIdTokenClaims: false,
      pkce: { required: () => true },
      features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
      async findAccount(ctx, id) {
        if (!accounts[id]) return undefined;
        return { accountId: id, async claims() { return { sub: id, ...accounts[id] }; } };
      },
      // First-party client: no consent screen.
      async loadExistingGrant(ctx) {
        const grantId = ctx.oidc.result?.consent?.grantId
          || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
        if (grantId) return ctx.oidc.provider.Grant.find(grantId);
        const grant = new ctx.oidc.provider.Grant({
          clientId: ctx.oidc.client.clientId,
          accountId: ctx.oidc.session.accountId,
        });
        grant.addOIDCScope('openid email groups');
        await grant.save();
        return grant;
      },
    });
    this.server = http.createServer(this.provider.callback());
    await new Promise((resolve) => this.server.listen(this.port, '127.0.0.1', resolve));
  }

  async stop() {
    if (this.server) {
      this.server.closeAllConnections?.();
      await new Promise((r) => this.server.close(r));
    }
  }
}

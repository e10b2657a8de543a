// A FAPI 2.0 relying party built on openid-client 6 (panva): private_key_jwt, PAR, PKCE S256
// and DPoP, against the issuer given in argv. It prints the authorization URL, reads the
// redirect back from stdin (the Python test signs the official in), then redeems the code,
// calls userinfo and refreshes, all with DPoP, and prints what it got as one JSON line.
import * as client from 'openid-client';
import * as readline from 'node:readline';

const [issuer, clientId, jwkJson, redirectUri] = process.argv.slice(2);
const jwk = JSON.parse(jwkJson);
const privateKey = await crypto.subtle.importKey(
  'jwk', jwk, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
const config = await client.discovery(
  new URL(issuer), clientId, {}, client.PrivateKeyJwt({ key: privateKey, kid: jwk.kid }),
  { execute: [client.allowInsecureRequests] });
const dpopKeys = await client.randomDPoPKeyPair('ES256');
const DPoP = client.getDPoPHandle(config, dpopKeys);
const codeVerifier = client.randomPKCECodeVerifier();
const state = client.randomState();
const url = await client.buildAuthorizationUrlWithPAR(config, {
  redirect_uri: redirectUri,
  scope: 'openid profile offline_access',
  code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
  code_challenge_method: 'S256',
  state,
}, { DPoP });
console.log(JSON.stringify({ authorization_url: url.href }));
const lines = readline.createInterface({ input: process.stdin });
const callback = await new Promise((resolve) => lines.once('line', resolve));
lines.close();
const tokens = await client.authorizationCodeGrant(
  config, new URL(callback), { pkceCodeVerifier: codeVerifier, expectedState: state },
  undefined, { DPoP });
const claims = tokens.claims();
const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub, { DPoP });
const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP });
console.log(JSON.stringify({
  token_type: tokens.token_type,
  access_token: tokens.access_token,
  sub: claims.sub,
  userinfo,
  refreshed_token_type: refreshed.token_type,
}));

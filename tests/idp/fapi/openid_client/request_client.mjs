// A relying party built on openid-client 6 (panva) that sends its authorization request as a
// signed request object (RFC 9101) or binds the code to its DPoP key (RFC 9449 §10), as argv's
// mode says:
//   jar       buildAuthorizationUrlWithJAR: the request object by value;
//   par-jar   the same request object pushed (buildAuthorizationUrlWithPAR);
//   dpop-jkt  dpop_jkt in a plain authorization request, then the code redeemed with DPoP.
// It authenticates with private_key_jwt and signs request objects with the same key, prints
// the authorization URL, reads the redirect back from stdin (the Python test signs the
// official in), redeems the code and prints what it got as one JSON line.
import * as client from 'openid-client';
import { calculateJwkThumbprint } from 'jose';
import * as readline from 'node:readline';

const [issuer, clientId, jwkJson, redirectUri, mode] = process.argv.slice(2);
const jwk = JSON.parse(jwkJson);
const privateKey = await crypto.subtle.importKey(
  'jwk', jwk, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
const signingKey = { key: privateKey, kid: jwk.kid };
const config = await client.discovery(
  new URL(issuer), clientId, {}, client.PrivateKeyJwt(signingKey),
  { execute: [client.allowInsecureRequests] });
const codeVerifier = client.randomPKCECodeVerifier();
const state = client.randomState();
const parameters = {
  redirect_uri: redirectUri,
  scope: 'openid profile',
  code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
  code_challenge_method: 'S256',
  state,
};
let url;
let DPoP;
let dpopJkt;
if (mode === 'jar') {
  url = await client.buildAuthorizationUrlWithJAR(config, parameters, signingKey);
} else if (mode === 'par-jar') {
  const signed = await client.buildAuthorizationUrlWithJAR(config, parameters, signingKey);
  url = await client.buildAuthorizationUrlWithPAR(config, signed.searchParams);
} else if (mode === 'dpop-jkt') {
  const dpopKeys = await client.randomDPoPKeyPair('ES256');
  DPoP = client.getDPoPHandle(config, dpopKeys);
  dpopJkt = await calculateJwkThumbprint(
    await crypto.subtle.exportKey('jwk', dpopKeys.publicKey));
  url = client.buildAuthorizationUrl(config, { ...parameters, dpop_jkt: dpopJkt });
} else {
  throw new Error(`unknown mode ${mode}`);
}
console.log(JSON.stringify({ authorization_url: url.href, dpop_jkt: dpopJkt }));
const lines = readline.createInterface({ input: process.stdin });
const callback = await new Promise((resolve) => lines.once('line', resolve));
lines.close();
const tokens = await client.authorizationCodeGrant(
  config, new URL(callback), { pkceCodeVerifier: codeVerifier, expectedState: state },
  undefined, DPoP ? { DPoP } : undefined);
console.log(JSON.stringify({
  token_type: tokens.token_type,
  access_token: tokens.access_token,
  id_token_claims: tokens.claims(),
}));

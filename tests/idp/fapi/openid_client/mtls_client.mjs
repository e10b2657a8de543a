// A FAPI 2.0 relying party built on openid-client 6 (panva) with RFC 8705: tls_client_auth
// (its certificate and key presented in every TLS handshake, through a customFetch on
// node:https), PAR, PKCE S256 and certificate-bound tokens. It prints the authorization URL,
// reads the redirect back from stdin, redeems the code, calls userinfo and refreshes, and
// prints what it got as one JSON line. argv: issuer, client_id, certificate PEM file, key PEM
// file, the server's CA PEM file, redirect URI.
import * as client from 'openid-client';
import * as https from 'node:https';
import * as readline from 'node:readline';
import { readFileSync } from 'node:fs';

const [issuer, clientId, certFile, keyFile, caFile, redirectUri] = process.argv.slice(2);
const tls = { cert: readFileSync(certFile), key: readFileSync(keyFile), ca: readFileSync(caFile) };

// fetch() over node:https, so that the TLS handshake presents the client certificate.
async function mtlsFetch(url, options) {
  const body = options.body === undefined ? undefined : String(options.body);
  return await new Promise((resolve, reject) => {
    const request = https.request(url, {
      ...tls,
      method: options.method,
      headers: {
        ...Object.fromEntries(new Headers(options.headers).entries()),
        // As fetch() does for a string body (not chunked, which nginx refused on a kept-alive
        // connection with a bare 400).
        ...(body === undefined ? {} : { 'content-length': Buffer.byteLength(body) }),
      },
      signal: options.signal,
    }, (response) => {
      const chunks = [];
      response.on('data', (chunk) => chunks.push(chunk));
      response.on('end', () => {
        const headers = new Headers();
        for (const [name, value] of Object.entries(response.headers)) {
          for (const each of [value].flat()) headers.append(name, each);
        }
        const status = response.statusCode;
        const content = [204, 304].includes(status) ? null : Buffer.concat(chunks);
        resolve(new Response(content, { status, headers }));
      });
    });
    request.on('error', reject);
    if (body !== undefined) request.write(body);
    request.end();
  });
}

const config = await client.discovery(
  new URL(issuer), clientId, { tls_client_certificate_bound_access_tokens: true },
  client.TlsClientAuth(), { [client.customFetch]: mtlsFetch });
config[client.customFetch] = mtlsFetch;
const codeVerifier = client.randomPKCECodeVerifier();
const state = client.randomState();
const url = await client.buildAuthorizationUrlWithPAR(config, {
  redirect_uri: redirectUri,
  scope: 'openid profile offline_access',
  code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
  code_challenge_method: 'S256',
  state,
});
console.log(JSON.stringify({ authorization_url: url.href }));
const lines = readline.createInterface({ input: process.stdin });
const callback = await new Promise((resolve) => lines.once('line', resolve));
lines.close();
const tokens = await client.authorizationCodeGrant(
  config, new URL(callback), { pkceCodeVerifier: codeVerifier, expectedState: state });
const claims = tokens.claims();
const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
console.log(JSON.stringify({
  token_type: tokens.token_type,
  access_token: tokens.access_token,
  refreshed_access_token: refreshed.access_token,
  sub: claims.sub,
  amr: claims.amr,
  userinfo,
}));

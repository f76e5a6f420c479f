#!/usr/bin/env node
'use strict';
/*
 * Google's OAuth2 token endpoint for service accounts, as far as Herald's
 * tests need it: the JWT-bearer grant (RFC 7523) with domain-wide delegation.
 *
 *   node tests/peers/google_token_server.js --public-key <pem file> \
 *        --client-email <service account> [--refuse-sub <address>]... \
 *        [--disabled-key]
 *
 * POST /token (application/x-www-form-urlencoded):
 *   grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>
 * The assertion's RS256 signature is verified with the service account key's
 * public half; `iss` must be the client email, `aud` this endpoint's URL,
 * `scope` https://mail.google.com/, `sub` present, `iat`/`exp` now and at
 * most an hour apart. Answers as Google does:
 *   200 {"access_token", "expires_in": 3599, "token_type": "Bearer"}: the
 *       token is a JWT signed by this server's own key (GET /jwks), so the
 *       XOAUTH2 SMTP peer (scripted_smtp.js xoauth2Jwks) can check it;
 *   401 {"error": "unauthorized_client", "error_description": "Client is
 *       unauthorized to retrieve access tokens using this method, or client
 *       not authorized for any of the scopes requested."} for a refused sub
 *       (delegation not granted);
 *   400 {"error": "invalid_grant", "error_description": "Invalid JWT
 *       Signature."} for a bad signature or with --disabled-key.
 * GET /stats: {"issued": n, "refused": n, "subs": [..]}.
 * Prints `READY <port>` once listening on 127.0.0.1; SIGTERM stops it.
 */

const http = require('node:http');
const crypto = require('node:crypto');
const fs = require('node:fs');

const args = process.argv.slice(2);
const opt = { refuse: [] };
for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--public-key') opt.publicKey = fs.readFileSync(args[++i], 'utf8');
    else if (a === '--client-email') opt.clientEmail = args[++i];
    else if (a === '--refuse-sub') opt.refuse.push(args[++i].toLowerCase());
    else if (a === '--disabled-key') opt.disabled = true;
    else { process.stderr.write('google_token_server: unknown argument ' + a + '\n'); process.exit(2); }
}
if (!opt.publicKey || !opt.clientEmail) {
    process.stderr.write('google_token_server: --public-key and --client-email are required\n');
    process.exit(2);
}

const saKey = crypto.createPublicKey(opt.publicKey);
const own = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const kid = crypto.randomBytes(8).toString('hex');
const stats = { issued: 0, refused: 0, subs: [], errors: [] };
let port = 0;

function b64url(obj) {
    return Buffer.from(JSON.stringify(obj)).toString('base64url');
}

function reply(res, status, body) {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify(body));
}

function invalid(res, why) {
    stats.errors.push(why);
    process.stderr.write('[google_token_server] refused: ' + why + '\n');
    reply(res, 400, { error: 'invalid_grant', error_description: 'Invalid JWT Signature.' });
}

function handleToken(body, res) {
    const form = new URLSearchParams(body);
    if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') {
        return reply(res, 400, { error: 'unsupported_grant_type', error_description: 'Invalid grant_type: ' + form.get('grant_type') });
    }
    const parts = (form.get('assertion') || '').split('.');
    if (parts.length !== 3) return invalid(res, 'not a JWT');
    let header, claims;
    try {
        header = JSON.parse(Buffer.from(parts[0], 'base64url'));
        claims = JSON.parse(Buffer.from(parts[1], 'base64url'));
    } catch (e) {
        return invalid(res, 'unreadable JWT');
    }
    if (header.alg !== 'RS256') return invalid(res, 'alg ' + header.alg);
    const ok = crypto.verify('sha256', Buffer.from(parts[0] + '.' + parts[1]), saKey, Buffer.from(parts[2], 'base64url'));
    if (!ok) return invalid(res, 'signature');
    if (opt.disabled) return invalid(res, 'key disabled');
    const now = Math.floor(Date.now() / 1000);
    const aud = 'http://127.0.0.1:' + port + '/token';
    const problems = [];
    if (claims.iss !== opt.clientEmail) problems.push('iss ' + claims.iss);
    if (claims.aud !== aud) problems.push('aud ' + claims.aud);
    if (claims.scope !== 'https://mail.google.com/') problems.push('scope ' + claims.scope);
    if (typeof claims.sub !== 'string' || !claims.sub.includes('@')) problems.push('sub ' + claims.sub);
    if (typeof claims.iat !== 'number' || Math.abs(claims.iat - now) > 300) problems.push('iat ' + claims.iat);
    if (typeof claims.exp !== 'number' || claims.exp <= now || claims.exp - claims.iat > 3600) problems.push('exp ' + claims.exp);
    if (problems.length) {
        stats.errors.push(problems.join(', '));
        return reply(res, 400, { error: 'invalid_grant', error_description: 'Invalid claims: ' + problems.join(', ') });
    }
    if (opt.refuse.includes(claims.sub.toLowerCase())) {
        stats.refused += 1;
        return reply(res, 401, {
            error: 'unauthorized_client',
            error_description: 'Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.'
        });
    }
    stats.issued += 1;
    stats.subs.push(claims.sub);
    const tokenHeader = b64url({ alg: 'RS256', typ: 'JWT', kid });
    const tokenClaims = b64url({ iss: 'http://127.0.0.1:' + port, sub: claims.sub, scope: claims.scope, iat: now, exp: now + 3599 });
    const sig = crypto.sign('sha256', Buffer.from(tokenHeader + '.' + tokenClaims), own.privateKey).toString('base64url');
    reply(res, 200, { access_token: tokenHeader + '.' + tokenClaims + '.' + sig, expires_in: 3599, token_type: 'Bearer' });
}

const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', c => { body += c; });
    req.on('end', () => {
        const path = req.url.split('?')[0];
        if (req.method === 'POST' && path === '/token') return handleToken(body, res);
        if (req.method === 'GET' && path === '/jwks') {
            const jwk = own.publicKey.export({ format: 'jwk' });
            return reply(res, 200, { keys: [Object.assign(jwk, { kid, alg: 'RS256', use: 'sig' })] });
        }
        if (req.method === 'GET' && path === '/stats') return reply(res, 200, stats);
        reply(res, 404, { error: 'not_found' });
    });
});
server.listen(0, '127.0.0.1', () => {
    port = server.address().port;
    process.stdout.write('READY ' + port + '\n');
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));

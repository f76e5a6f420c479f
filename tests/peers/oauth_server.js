#!/usr/bin/env node
'use strict';
/*
 * Strict OAuth2 authorization server for Herald's tests, built on npm
 * `oauth2-mock-server` (OAuth2Server: its key store, JWT signing, JWKS,
 * discovery and authorize redirect).
 *
 *   node tests/peers/oauth_server.js [--config '<json>']
 *
 * Starts the OAuth2 server and a small control server, both on 127.0.0.1 on
 * ports chosen by the OS, then prints `READY <oauth_port> <control_port>` on
 * stdout. Logs go to stderr. SIGTERM/SIGINT stop it (exit 0).
 *
 * oauth2-mock-server on its own validates nothing: any client, any code, any
 * refresh token is accepted, PKCE is checked only when the client happens to
 * send a code_verifier, and its hooks (beforeResponse, ...) are synchronous and
 * run after its own checks. So the public /authorize, /token and /revoke are
 * routes of our own (registered with the mock's documented addRoute()); they
 * check everything a strict real server checks and only then hand the request
 * to the mock's own authorize/token handlers, which live on an unguessable
 * internal path. The mock's hooks then bind the codes it issues to what was
 * checked (beforeAuthorizeRedirect), set the JWT claims (beforeTokenSigning)
 * and shape the token response (beforeResponse).
 *
 * OAuth endpoints (issuer http://127.0.0.1:<oauth_port>):
 *   GET  /authorize   response_type=code, client_id, redirect_uri, state,
 *                     code_challenge (S256 only) required; 302 to
 *                     redirect_uri?code=...&state=...; else 400 JSON error
 *   POST /token       authorization_code | refresh_token | client_credentials,
 *                     client_secret_basic or client_secret_post
 *   POST /revoke      RFC 7009: revokes a refresh token of the client
 *   GET  /jwks, GET /.well-known/openid-configuration (the mock's)
 *
 * Control server (see README.md): GET /stats, GET /config, POST /config,
 * POST /revoke-all, GET /issuer.
 */

const http = require('node:http');
const crypto = require('node:crypto');
const { PassThrough } = require('node:stream');

function log(...args) {
    process.stderr.write('[oauth_server] ' + args.join(' ') + '\n');
}

function die(msg) {
    process.stderr.write('oauth_server: ' + msg + '\n');
    process.exit(2);
}

// ---------------------------------------------------------------- config
const REFRESH_MODES = ['ok', 'invalid_grant', 'interaction_required', 'invalid_client', 'unavailable', 'slow'];
const REFRESH_REQUIRES = [null, 'access_type=offline', 'offline_access'];

const DEFAULTS = Object.freeze({
    client_id: 'herald-test',
    client_secret: 'test-secret',
    expires_in: 3600,
    refresh_token_expires_in: null,
    rotate_refresh: true,
    refresh: 'ok',
    delay_ms: 3000,
    // extras, see README.md
    redirect_uris: null,
    refresh_token_requires: null
});

let config = { ...DEFAULTS };

const isInt = v => Number.isInteger(v);

/** Validates a partial config; returns an error message or null. */
function configProblem(patch) {
    if (!patch || typeof patch !== 'object' || Array.isArray(patch)) return 'the config must be a JSON object';
    for (const [k, v] of Object.entries(patch)) {
        switch (k) {
            case 'client_id':
            case 'client_secret':
                if (typeof v !== 'string' || v === '') return k + ' must be a non-empty string';
                break;
            case 'expires_in':
                if (!isInt(v) || v < 0) return 'expires_in must be an integer >= 0 (seconds)';
                break;
            case 'refresh_token_expires_in':
                if (v !== null && (!isInt(v) || v < 0)) return 'refresh_token_expires_in must be null or an integer >= 0 (seconds)';
                break;
            case 'rotate_refresh':
                if (typeof v !== 'boolean') return 'rotate_refresh must be true or false';
                break;
            case 'refresh':
                if (!REFRESH_MODES.includes(v)) return 'refresh must be one of ' + REFRESH_MODES.join(', ');
                break;
            case 'delay_ms':
                if (!isInt(v) || v < 0 || v > 600000) return 'delay_ms must be an integer in 0..600000';
                break;
            case 'redirect_uris':
                if (v !== null && (!Array.isArray(v) || !v.every(u => typeof u === 'string' && redirectUriProblem(u) === null))) {
                    return 'redirect_uris must be null or an array of absolute URIs without fragment';
                }
                break;
            case 'refresh_token_requires':
                if (!REFRESH_REQUIRES.includes(v)) return 'refresh_token_requires must be null, "access_type=offline" or "offline_access"';
                break;
            default:
                return 'unknown config key ' + JSON.stringify(k) + ' (known: ' + Object.keys(DEFAULTS).join(', ') + ')';
        }
    }
    return null;
}

// ---------------------------------------------------------------- state
const CODE_TTL_MS = 10 * 60 * 1000;
const SUBJECT = 'johndoe'; // the mock's subject
const INVALID_REFRESH = 'Token has been expired or revoked.';

/** code -> {client_id, redirect_uri, code_challenge, scope, access_type, nonce, mock_code, expires_at, used} */
const codes = new Map();
/** refresh token -> {client_id, scope, active, reason, expires_at (ms or null), from_code} */
const refreshTokens = new Map();

function newStats() {
    return {
        token_requests: 0,
        by_grant: { authorization_code: 0, refresh_token: 0, client_credentials: 0 },
        issued_access_tokens: 0,
        issued_refresh_tokens: 0,
        authorize_requests: 0,
        issued_codes: 0,
        revoke_requests: 0
    };
}
const stats = newStats();

/**
 * Opaque random string in standard base64 that always contains '+' and '/'
 * (like Google's "1//0g..." refresh tokens and "4/0A..." codes), so a client
 * that forgets to form-encode or URL-decode it fails every time, not 3 times
 * out of 4.
 */
function opaque(prefix) {
    for (;;) {
        const s = crypto.randomBytes(33).toString('base64');
        if (s.includes('+') && s.includes('/')) return prefix + s;
    }
}

function timingSafeStrEq(a, b) {
    const x = Buffer.from(String(a));
    const y = Buffer.from(String(b));
    return x.length === y.length && crypto.timingSafeEqual(x, y);
}

function s256(verifier) {
    return crypto.createHash('sha256').update(verifier, 'ascii').digest('base64url');
}

const scopeSet = s => new Set(String(s || '').split(' ').filter(Boolean));

// ---------------------------------------------------------------- redirect URIs
function redirectUriProblem(uri) {
    let u;
    try {
        u = new URL(uri);
    } catch (e) {
        return 'redirect_uri must be an absolute URI';
    }
    if (uri.includes('#') || u.hash) return 'redirect_uri must not contain a fragment (RFC 6749 §3.1.2)';
    return null;
}

/** Registered-URI comparison: exact, except that the port of an http loopback IP URI may vary (RFC 8252 §7.3). */
function redirectUriRegistered(uri, registered) {
    const loopbackless = s => {
        const u = new URL(s);
        if (u.protocol === 'http:' && (u.hostname === '127.0.0.1' || u.hostname === '[::1]' || u.hostname === 'localhost')) {
            u.port = '';
        }
        return u.href;
    };
    return registered.some(r => r === uri || loopbackless(r) === loopbackless(uri));
}

// ---------------------------------------------------------------- responses
function sendJson(res, status, body, headers = {}) {
    const content = JSON.stringify(body);
    res.statusCode = status;
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Pragma', 'no-cache');
    for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
    res.setHeader('Content-Length', Buffer.byteLength(content));
    res.end(content);
}

/** An RFC 6749 §5.2 error. 401 answers carry a WWW-Authenticate challenge. */
function oauthError(res, status, error, description, what) {
    const body = { error };
    if (description) body.error_description = description;
    log(what || 'error', '->', status, error + (description ? ': ' + description : ''));
    sendJson(res, status, body, status === 401 ? { 'WWW-Authenticate': 'Basic realm="herald-test-oauth"' } : {});
}

function sendUnavailable(res) {
    const html = '<html><head><title>503 Service Unavailable</title></head>' +
        '<body><h1>503 Service Unavailable</h1><p>The server is temporarily unable to service your request.</p></body></html>\n';
    res.statusCode = 503;
    res.setHeader('Content-Type', 'text/html; charset=UTF-8');
    res.setHeader('Content-Length', Buffer.byteLength(html));
    res.end(html);
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

// ---------------------------------------------------------------- client authentication
function formDecode(s) {
    return decodeURIComponent(s.replace(/\+/g, ' '));
}

/**
 * client_secret_basic (RFC 6749 §2.3.1: id and secret form-encoded, then
 * base64) or client_secret_post. Returns {client_id, method} or {status, error, description}.
 */
function authenticateClient(req, body) {
    const header = req.headers.authorization;
    let id;
    let secret;
    let method;
    if (header !== undefined) {
        const m = /^Basic +([A-Za-z0-9+/]+=*) *$/i.exec(header);
        if (!m) return { status: 401, error: 'invalid_client', description: 'the Authorization header is not HTTP Basic client credentials' };
        const decoded = Buffer.from(m[1], 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        if (colon < 0) return { status: 401, error: 'invalid_client', description: 'HTTP Basic credentials without ":"' };
        try {
            id = formDecode(decoded.slice(0, colon));
            secret = formDecode(decoded.slice(colon + 1));
        } catch (e) {
            return { status: 401, error: 'invalid_client', description: 'HTTP Basic credentials are not form-encoded (RFC 6749 §2.3.1)' };
        }
        if (body.client_secret !== undefined) {
            return { status: 400, error: 'invalid_request', description: 'more than one client authentication method (HTTP Basic and client_secret in the body, RFC 6749 §2.3)' };
        }
        if (body.client_id !== undefined && body.client_id !== id) {
            return { status: 401, error: 'invalid_client', description: 'client_id in the body differs from the HTTP Basic one' };
        }
        method = 'client_secret_basic';
    } else if (body.client_secret !== undefined) {
        id = body.client_id;
        secret = body.client_secret;
        if (!id) return { status: 401, error: 'invalid_client', description: 'client_secret without client_id' };
        method = 'client_secret_post';
    } else {
        return { status: 401, error: 'invalid_client', description: 'client authentication required (client_secret_basic or client_secret_post)' };
    }
    const idOk = timingSafeStrEq(id, config.client_id);
    const secretOk = timingSafeStrEq(secret, config.client_secret);
    if (!idOk) return { status: 401, error: 'invalid_client', description: 'The OAuth client was not found.' };
    if (!secretOk) return { status: 401, error: 'invalid_client', description: 'Unauthorized: wrong client secret' };
    return { client_id: id, method };
}

// ---------------------------------------------------------------- main
function parseArgs(argv) {
    let initial = {};
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const eq = a.indexOf('=');
        const name = eq > 0 ? a.slice(0, eq) : a;
        const value = () => (eq > 0 ? a.slice(eq + 1) : argv[++i]);
        if (name === '--config') {
            const v = value();
            if (v === undefined) die('--config needs a value');
            try {
                initial = JSON.parse(v);
            } catch (e) {
                die('--config is not valid JSON: ' + e.message);
            }
            const problem = configProblem(initial);
            if (problem) die('--config: ' + problem);
        } else if (name === '-h' || name === '--help') {
            process.stdout.write("usage: node oauth_server.js [--config '<json>']\n");
            process.exit(0);
        } else die('unknown argument ' + a);
    }
    return initial;
}

async function main() {
    Object.assign(config, parseArgs(process.argv.slice(2)));
    const { OAuth2Server } = await import('oauth2-mock-server');

    // The mock's own authorize/token handlers move to an unguessable internal
    // path; the public paths are ours. Calls made straight to the internal
    // path are refused in the hooks below.
    const hidden = '/_mock-' + crypto.randomBytes(16).toString('hex');
    const oauth = new OAuth2Server(undefined, undefined, {
        endpoints: { authorize: hidden + '/authorize', token: hidden + '/token', revoke: hidden + '/revoke' }
    });
    const service = oauth.service;
    const jwk = await oauth.issuer.keys.generate('RS256');
    let issuer = null; // http://127.0.0.1:<port>, set once listening
    let stopping = false;
    const held = new Set(); // token responses held back by refresh=slow

    /** Hands a checked request to the mock's own handler, in process. */
    function delegate(res, method, path, params, ctx) {
        const raw = new URLSearchParams(params).toString();
        const fake = new PassThrough();
        fake.method = method;
        fake.url = method === 'GET' ? path + '?' + raw : path;
        fake.headers = method === 'GET' ? {} : { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(Buffer.byteLength(raw)) };
        fake.herald = ctx;
        fake.end(method === 'GET' ? '' : raw);
        service.requestHandler(fake, res);
    }

    // ------------------------------------------------------------ /authorize
    service.addRoute('GET', '/authorize', async (req, res) => {
        stats.authorize_requests++;
        const q = req.query;
        const bad = (error, description) => oauthError(res, 400, error, description, 'GET /authorize');
        for (const [k, v] of Object.entries(q)) {
            if (Array.isArray(v)) return bad('invalid_request', 'parameter ' + k + ' given more than once');
        }
        if (q.response_type === undefined) return bad('invalid_request', 'missing response_type');
        if (q.response_type !== 'code') return bad('unsupported_response_type', 'only response_type=code is supported');
        if (!q.client_id) return bad('invalid_request', 'missing client_id');
        if (q.client_id !== config.client_id) return bad('invalid_client', 'The OAuth client was not found.');
        if (!q.redirect_uri) return bad('invalid_request', 'missing redirect_uri');
        const uriProblem = redirectUriProblem(q.redirect_uri);
        if (uriProblem) return bad('invalid_request', uriProblem);
        if (config.redirect_uris && !redirectUriRegistered(q.redirect_uri, config.redirect_uris)) {
            return bad('invalid_request', 'redirect_uri_mismatch: ' + q.redirect_uri + ' is not registered for this client');
        }
        if (!q.state) return bad('invalid_request', 'missing state');
        if (!q.code_challenge) return bad('invalid_request', 'missing code_challenge: PKCE is required');
        if (q.code_challenge_method !== 'S256') {
            return bad('invalid_request', 'code_challenge_method must be S256 (got ' + JSON.stringify(q.code_challenge_method || null) + ')');
        }
        if (!/^[A-Za-z0-9_-]{43}$/.test(q.code_challenge)) {
            return bad('invalid_request', 'code_challenge must be BASE64URL(SHA256(code_verifier)) without padding: 43 characters of [A-Za-z0-9_-]');
        }
        const ctx = {
            client_id: q.client_id,
            redirect_uri: q.redirect_uri,
            code_challenge: q.code_challenge,
            scope: q.scope === undefined ? '' : q.scope,
            access_type: q.access_type,
            state: q.state
        };
        const params = {
            response_type: 'code',
            redirect_uri: q.redirect_uri,
            state: q.state,
            code_challenge: q.code_challenge,
            code_challenge_method: 'S256'
        };
        if (q.scope !== undefined) params.scope = q.scope;
        if (q.nonce !== undefined) params.nonce = q.nonce;
        return delegate(res, 'GET', hidden + '/authorize', params, ctx);
    });

    // The mock generated its own code (a UUID) and stored the challenge under
    // it; we issue our own code bound to what we checked, and remember the
    // mock's one to redeem it with the mock later.
    service.on('beforeAuthorizeRedirect', (redirect, req) => {
        const ctx = req.herald;
        if (!ctx) {
            redirect.url.searchParams.delete('code');
            redirect.url.searchParams.set('error', 'access_denied');
            return;
        }
        const mockCode = redirect.url.searchParams.get('code');
        const code = opaque('4/0');
        codes.set(code, {
            client_id: ctx.client_id,
            redirect_uri: ctx.redirect_uri,
            code_challenge: ctx.code_challenge,
            scope: ctx.scope,
            access_type: ctx.access_type,
            mock_code: mockCode,
            expires_at: Date.now() + CODE_TTL_MS,
            used: false
        });
        // the mock redirects to this very URL object: edit it in place
        redirect.url.searchParams.set('code', code);
        stats.issued_codes++;
        log('GET /authorize -> 302 code for', ctx.client_id, 'redirect_uri', ctx.redirect_uri, 'scope', JSON.stringify(ctx.scope));
    });

    // ------------------------------------------------------------ /token
    service.addRoute('POST', '/token', async (req, res) => {
        stats.token_requests++;
        const body = req.body && typeof req.body === 'object' && !Array.isArray(req.body) ? req.body : {};
        const grant = typeof body.grant_type === 'string' ? body.grant_type : undefined;
        if (grant !== undefined && Object.prototype.hasOwnProperty.call(stats.by_grant, grant)) stats.by_grant[grant]++;
        const what = 'POST /token ' + (grant || '?');
        const fail = (status, error, description) => oauthError(res, status, error, description, what);

        const ct = String(req.headers['content-type'] || '').split(';')[0].trim().toLowerCase();
        if (ct !== 'application/x-www-form-urlencoded') {
            return fail(400, 'invalid_request', 'the token endpoint takes application/x-www-form-urlencoded (got ' + JSON.stringify(ct || null) + ')');
        }
        for (const [k, v] of Object.entries(body)) {
            if (Array.isArray(v)) return fail(400, 'invalid_request', 'parameter ' + k + ' given more than once');
        }
        if (grant === undefined) return fail(400, 'invalid_request', 'missing grant_type');
        if (!['authorization_code', 'refresh_token', 'client_credentials'].includes(grant)) {
            return fail(400, 'unsupported_grant_type', 'grant_type ' + grant + ' is not supported');
        }

        if (grant === 'refresh_token') {
            switch (config.refresh) {
                case 'invalid_grant':
                    log(what, '-> 400 invalid_grant (control: refresh=invalid_grant)');
                    return sendJson(res, 400, { error: 'invalid_grant', error_description: INVALID_REFRESH });
                case 'interaction_required':
                    log(what, '-> 400 interaction_required (control)');
                    return sendJson(res, 400, { error: 'interaction_required' });
                case 'invalid_client':
                    log(what, '-> 401 invalid_client (control)');
                    return sendJson(res, 401, { error: 'invalid_client', error_description: 'Unauthorized' },
                        { 'WWW-Authenticate': 'Basic realm="herald-test-oauth"' });
                case 'unavailable':
                    log(what, '-> 503 (control: refresh=unavailable)');
                    return sendUnavailable(res);
                case 'slow':
                    log(what, 'slow: answering in', config.delay_ms, 'ms');
                    held.add(res);
                    await sleep(config.delay_ms);
                    held.delete(res);
                    if (stopping) return undefined;
                    break;
                default:
                    break;
            }
        }

        const client = authenticateClient(req, body);
        if (client.error) return fail(client.status, client.error, client.description);

        const ctx = { grant, client_id: client.client_id, expires_in: config.expires_in, signed: 0 };

        if (grant === 'authorization_code') {
            if (!body.code) return fail(400, 'invalid_request', 'missing code');
            const rec = codes.get(body.code);
            if (!rec) return fail(400, 'invalid_grant', 'unknown authorization code');
            if (rec.used) {
                // RFC 6749 §4.1.2: a code used twice revokes what it granted
                let n = 0;
                for (const t of refreshTokens.values()) {
                    if (t.from_code === body.code && t.active) {
                        t.active = false;
                        t.reason = 'code reused';
                        n++;
                    }
                }
                return fail(400, 'invalid_grant', 'authorization code already used' + (n ? ' (its ' + n + ' refresh token(s) revoked)' : ''));
            }
            rec.used = true; // the first attempt consumes the code, whatever its outcome
            if (Date.now() > rec.expires_at) return fail(400, 'invalid_grant', 'authorization code expired');
            if (rec.client_id !== client.client_id) return fail(400, 'invalid_grant', 'the code was issued to another client');
            if (body.redirect_uri === undefined) return fail(400, 'invalid_grant', 'missing redirect_uri: it must be the one given to /authorize');
            if (body.redirect_uri !== rec.redirect_uri) {
                return fail(400, 'invalid_grant', 'redirect_uri mismatch: the code was issued for ' + rec.redirect_uri);
            }
            const verifier = body.code_verifier;
            if (verifier === undefined) return fail(400, 'invalid_grant', 'missing code_verifier');
            if (!/^[A-Za-z0-9\-._~]{43,128}$/.test(verifier)) {
                return fail(400, 'invalid_grant', 'code_verifier must be 43 to 128 characters of [A-Za-z0-9-._~] (RFC 7636 §4.1)');
            }
            if (s256(verifier) !== rec.code_challenge) return fail(400, 'invalid_grant', 'code_verifier does not match the code_challenge');

            ctx.scope = rec.scope;
            const wantsRefresh =
                config.refresh_token_requires === null ||
                (config.refresh_token_requires === 'access_type=offline' && rec.access_type === 'offline') ||
                (config.refresh_token_requires === 'offline_access' && scopeSet(rec.scope).has('offline_access'));
            if (wantsRefresh) {
                ctx.new_refresh = {
                    token: opaque('1//'),
                    scope: rec.scope,
                    expires_in: config.refresh_token_expires_in,
                    from_code: body.code
                };
            }
            const params = { grant_type: 'authorization_code', code: rec.mock_code, code_verifier: verifier, client_id: client.client_id };
            return delegate(res, 'POST', hidden + '/token', params, ctx);
        }

        if (grant === 'refresh_token') {
            if (!body.refresh_token) return fail(400, 'invalid_request', 'missing refresh_token');
            const rec = refreshTokens.get(body.refresh_token);
            if (!rec) return fail(400, 'invalid_grant', INVALID_REFRESH + ' (unknown refresh token)');
            if (!rec.active) return fail(400, 'invalid_grant', INVALID_REFRESH + ' (' + rec.reason + ')');
            if (rec.client_id !== client.client_id) return fail(400, 'invalid_grant', INVALID_REFRESH + ' (issued to another client)');
            if (rec.expires_at !== null && Date.now() >= rec.expires_at) return fail(400, 'invalid_grant', INVALID_REFRESH + ' (expired)');
            let scope = rec.scope;
            if (body.scope !== undefined) {
                const granted = scopeSet(rec.scope);
                const extra = [...scopeSet(body.scope)].filter(s => !granted.has(s));
                if (extra.length) return fail(400, 'invalid_scope', 'scope beyond the original grant: ' + extra.join(' '));
                scope = body.scope;
            }
            ctx.scope = scope;
            if (config.rotate_refresh) {
                rec.active = false;
                rec.reason = 'rotated';
                ctx.new_refresh = {
                    token: opaque('1//'),
                    scope: rec.scope, // RFC 6749 §6: same scope as the one it replaces
                    expires_in: config.refresh_token_expires_in,
                    from_code: rec.from_code
                };
            } else if (rec.expires_at !== null) {
                ctx.refresh_token_expires_in = Math.max(0, Math.floor((rec.expires_at - Date.now()) / 1000));
            }
            const params = { grant_type: 'refresh_token', client_id: client.client_id };
            return delegate(res, 'POST', hidden + '/token', params, ctx);
        }

        // client_credentials
        ctx.scope = body.scope === undefined ? '' : body.scope;
        const params = { grant_type: 'client_credentials', client_id: client.client_id };
        return delegate(res, 'POST', hidden + '/token', params, ctx);
    });

    // JWT claims. The mock signs the access token first, then (authorization
    // code and refresh grants) an id_token.
    service.on('beforeTokenSigning', (token, req) => {
        const ctx = req.herald;
        if (!ctx) return;
        ctx.signed++;
        const p = token.payload;
        p.exp = p.iat + ctx.expires_in;
        if (ctx.signed === 1) {
            p.sub = ctx.grant === 'client_credentials' ? ctx.client_id : SUBJECT;
            p.aud = ctx.client_id;
            p.client_id = ctx.client_id;
            if (ctx.scope) p.scope = ctx.scope;
            else delete p.scope;
            if (ctx.grant === 'client_credentials') delete p.amr;
            p.jti = crypto.randomUUID();
        } else {
            p.sub = SUBJECT;
            p.aud = ctx.client_id;
        }
    });

    service.on('beforeResponse', (response, req) => {
        const ctx = req.herald;
        if (!ctx) {
            // someone found the internal path: refuse
            response.statusCode = 404;
            response.body = { error: 'not_found' };
            return;
        }
        if (response.statusCode !== 200) return;
        const mock = response.body;
        const body = { access_token: mock.access_token, token_type: 'Bearer', expires_in: ctx.expires_in };
        if (ctx.scope) body.scope = ctx.scope;
        if (ctx.new_refresh) {
            const r = ctx.new_refresh;
            refreshTokens.set(r.token, {
                client_id: ctx.client_id,
                scope: r.scope,
                active: true,
                reason: null,
                expires_at: r.expires_in === null ? null : Date.now() + r.expires_in * 1000,
                from_code: r.from_code
            });
            stats.issued_refresh_tokens++;
            body.refresh_token = r.token;
            if (r.expires_in !== null) body.refresh_token_expires_in = r.expires_in;
        } else if (ctx.refresh_token_expires_in !== undefined) {
            body.refresh_token_expires_in = ctx.refresh_token_expires_in;
        }
        if (mock.id_token && scopeSet(ctx.scope).has('openid')) body.id_token = mock.id_token;
        response.body = body;
        stats.issued_access_tokens++;
        log('POST /token ' + ctx.grant, '-> 200 for', ctx.client_id, 'expires_in', ctx.expires_in,
            ctx.new_refresh ? 'with a new refresh token' : 'without a new refresh token');
    });

    // ------------------------------------------------------------ /revoke (RFC 7009)
    service.addRoute('POST', '/revoke', async (req, res) => {
        stats.revoke_requests++;
        const body = req.body && typeof req.body === 'object' && !Array.isArray(req.body) ? req.body : {};
        const fail = (status, error, description) => oauthError(res, status, error, description, 'POST /revoke');
        const ct = String(req.headers['content-type'] || '').split(';')[0].trim().toLowerCase();
        if (ct !== 'application/x-www-form-urlencoded') return fail(400, 'invalid_request', 'the revocation endpoint takes application/x-www-form-urlencoded');
        const client = authenticateClient(req, body);
        if (client.error) return fail(client.status, client.error, client.description);
        if (typeof body.token !== 'string' || !body.token) return fail(400, 'invalid_request', 'missing token');
        const rec = refreshTokens.get(body.token);
        if (rec && rec.client_id === client.client_id && rec.active) {
            rec.active = false;
            rec.reason = 'revoked';
            log('POST /revoke -> 200, refresh token revoked');
        } else {
            log('POST /revoke -> 200 (not an active refresh token of this client: nothing to do)');
        }
        res.statusCode = 200;
        res.setHeader('Cache-Control', 'no-store');
        res.setHeader('Content-Length', '0');
        res.end();
        return undefined;
    });

    // the mock's own revocation endpoint (internal path) always answers 200
    service.on('beforeRevoke', response => {
        response.statusCode = 404;
    });

    // discovery: advertise what this server really does
    service.on('beforeWellKnownOpenIdConfiguration', response => {
        const b = response.body;
        b.authorization_endpoint = issuer + '/authorize';
        b.token_endpoint = issuer + '/token';
        b.revocation_endpoint = issuer + '/revoke';
        b.token_endpoint_auth_methods_supported = ['client_secret_basic', 'client_secret_post'];
        b.revocation_endpoint_auth_methods_supported = ['client_secret_basic', 'client_secret_post'];
        b.grant_types_supported = ['authorization_code', 'refresh_token', 'client_credentials'];
        b.code_challenge_methods_supported = ['S256'];
    });

    // ------------------------------------------------------------ start
    await oauth.start(0, '127.0.0.1');
    const port = oauth.address().port;
    issuer = 'http://127.0.0.1:' + port; // the mock would say http://localhost:<port>
    oauth.issuer.url = issuer;

    const control = http.createServer((req, res) => {
        handleControl(req, res).catch(err => {
            log('control error:', err.stack || err.message);
            if (!res.headersSent) sendJson(res, 500, { error: String(err.message) });
        });
    });

    async function readBody(req) {
        const chunks = [];
        let size = 0;
        for await (const chunk of req) {
            size += chunk.length;
            if (size > 1 << 20) throw new Error('body too large');
            chunks.push(chunk);
        }
        return Buffer.concat(chunks).toString('utf8');
    }

    async function handleControl(req, res) {
        const path = new URL(req.url, 'http://127.0.0.1').pathname;
        const route = req.method + ' ' + path;
        if (route === 'GET /stats') return sendJson(res, 200, stats);
        if (route === 'GET /config') return sendJson(res, 200, config);
        if (route === 'GET /issuer') {
            return sendJson(res, 200, {
                issuer,
                jwks_uri: issuer + '/jwks',
                authorization_endpoint: issuer + '/authorize',
                token_endpoint: issuer + '/token',
                revocation_endpoint: issuer + '/revoke',
                discovery: issuer + '/.well-known/openid-configuration',
                kid: jwk.kid
            });
        }
        if (route === 'POST /config') {
            const raw = await readBody(req);
            let patch;
            try {
                patch = raw.trim() === '' ? {} : JSON.parse(raw);
            } catch (e) {
                return sendJson(res, 400, { error: 'body is not JSON: ' + e.message });
            }
            const problem = configProblem(patch);
            if (problem) return sendJson(res, 400, { error: problem });
            Object.assign(config, patch);
            log('config:', JSON.stringify(patch));
            return sendJson(res, 200, config);
        }
        if (route === 'POST /revoke-all') {
            await readBody(req);
            let revoked = 0;
            for (const t of refreshTokens.values()) {
                if (t.active) {
                    t.active = false;
                    t.reason = 'revoked';
                    revoked++;
                }
            }
            log('revoke-all:', revoked, 'refresh token(s) revoked');
            return sendJson(res, 200, { revoked });
        }
        return sendJson(res, 404, { error: 'unknown control route ' + route });
    }

    await new Promise((resolve, reject) => control.listen(0, '127.0.0.1', resolve).on('error', reject));
    const controlPort = control.address().port;
    log('issuer', issuer, 'jwks', issuer + '/jwks', 'control http://127.0.0.1:' + controlPort, 'client', config.client_id);
    process.stdout.write('READY ' + port + ' ' + controlPort + '\n');

    const stop = sig => {
        if (stopping) return;
        stopping = true;
        log('stopping on', sig);
        control.close();
        control.closeAllConnections();
        // answers held back by refresh=slow must not delay the exit
        for (const res of held) res.destroy();
        oauth.stop().then(() => process.exit(0), () => process.exit(0));
        setTimeout(() => process.exit(0), 2000).unref();
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
}

main().catch(err => {
    log('fatal:', err.stack || err.message);
    process.exit(1);
});

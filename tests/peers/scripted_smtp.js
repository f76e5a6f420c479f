#!/usr/bin/env node
'use strict';
/*
 * Scripted SMTP peer for Herald's tests, built on npm `smtp-server` (by the
 * nodemailer authors). It replays the telltale replies of real providers.
 *
 *   node scripted_smtp.js --spec '<json>' --maildir DIR
 *
 * Binds 127.0.0.1 on a port chosen by the OS, prints `READY <port>` on stdout,
 * saves every accepted message to DIR/<n>.json (n = 1, 2, ...; continues after
 * the highest number already there; written to a temporary name, then renamed)
 * as {"mail_from", "rcpt_tos", "data", "auth_login"}, the same format as
 * smtp_auth_server.py. Logs go to stderr. SIGTERM/SIGINT stop it (exit 0).
 *
 * Spec keys (all optional), see README.md:
 *   secure, cert, key, starttls, authMethods, authOptional, greeting, auth
 *   {user, password, reply}, authRequired, mailFrom, rcptTo {addr: reply},
 *   data, xoauth2Tokens, xoauth2Jwks, xoauth2Error, enhancedStatusCodes, name,
 *   holdFirstDataReply.
 *
 * holdFirstDataReply (boolean, default false): the first message that would be
 * accepted is saved to DIR as usual, then the reply to its end of DATA is never
 * sent: the connection stays open, silent, until the client closes it (or
 * smtp-server's socket timeout does, 60 s). Later messages are answered as the
 * spec says. This is the window where a client has handed the message over but
 * does not know it yet (a crash there must resend, not lose, the message).
 *
 * A "reply" is a full SMTP reply, code included, e.g. "550 5.1.1 No such user".
 * Lines separated by "\n" go on the wire as one multi-line reply
 * ("534-5.7.9 ...\r\n534 5.7.9 ..."). smtp-server's callbacks can only give a
 * code and one line of text, to which it adds its own enhanced status code and
 * from which it strips line breaks, so scripted replies bypass its formatting:
 * SMTPConnection.prototype.send is wrapped, and the next send() of the expected
 * code on that connection writes the scripted reply verbatim instead.
 */

const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { SMTPServer } = require('smtp-server');
const { SMTPConnection } = require('smtp-server/lib/smtp-connection.js');

function log(...args) {
    process.stderr.write('[scripted_smtp] ' + args.join(' ') + '\n');
}

function die(msg) {
    process.stderr.write('scripted_smtp: ' + msg + '\n');
    process.exit(2);
}

// ---------------------------------------------------------------- arguments
function parseArgs(argv) {
    const out = { spec: '{}', maildir: null };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const eq = a.indexOf('=');
        const name = eq > 0 ? a.slice(0, eq) : a;
        const value = () => (eq > 0 ? a.slice(eq + 1) : argv[++i]);
        if (name === '--spec') out.spec = value();
        else if (name === '--maildir') out.maildir = value();
        else if (name === '-h' || name === '--help') {
            process.stdout.write("usage: node scripted_smtp.js --spec '<json>' --maildir DIR\n");
            process.exit(0);
        } else die('unknown argument ' + a);
    }
    if (!out.maildir) die('--maildir DIR is required');
    if (out.spec === undefined) die('--spec needs a value');
    let spec;
    try {
        spec = JSON.parse(out.spec);
    } catch (e) {
        die('--spec is not valid JSON: ' + e.message);
    }
    if (!spec || typeof spec !== 'object' || Array.isArray(spec)) die('--spec must be a JSON object');
    return { spec, maildir: out.maildir };
}

// ---------------------------------------------------------------- replies
/** Parses "550 5.1.1 text" (or multi-line with "\n") into {code, lines}. */
function parseReply(reply, what) {
    if (typeof reply !== 'string') die(what + ': a reply must be a string');
    const raw = reply.replace(/\r\n/g, '\n').replace(/\n+$/, '').split('\n');
    const m = /^([2-5]\d\d)(?:[ -]|$)/.exec(raw[0]);
    if (!m) die(what + ': a reply must start with a 3-digit code: ' + JSON.stringify(reply));
    const code = Number(m[1]);
    const lines = raw.map((line, i) => {
        const last = i === raw.length - 1;
        const lm = /^(\d\d\d)(?:[ -](.*)|$)/s.exec(line);
        // a line given without its own code continues the first line's code
        const lineCode = lm ? lm[1] : String(code);
        const text = lm ? lm[2] : line;
        if (text === undefined || text === '') return lineCode + (last ? '' : '-');
        return lineCode + (last ? ' ' : '-') + text;
    });
    return { code, lines, text: lines.map(l => l.slice(4)).join(' ') };
}

function scriptedError(parsed) {
    const err = new Error(parsed.text);
    err.responseCode = parsed.code;
    return err;
}

/** Queue a verbatim reply for the next send(libraryCode) on this session. */
function expectSend(session, libraryCode, parsed) {
    (session.__scripted || (session.__scripted = [])).push({ code: libraryCode, parsed });
}

const AUTH_REQUIRED_SENTINEL = 'herald-scripted-auth-required-sentinel';
let authRequiredReply = null;

function writeRaw(conn, parsed) {
    const payload = parsed.lines.join('\r\n');
    if (parsed.code >= 400) conn.session.error = payload;
    // same guard as smtp-server's own send(): never write in the middle of a TLS upgrade
    if (!conn._upgrading && conn._socket && !conn._socket.destroyed && conn._socket.readyState === 'open') {
        conn._socket.write(payload + '\r\n');
    }
    if (parsed.code === 421) conn.close();
}

const originalSend = SMTPConnection.prototype.send;
SMTPConnection.prototype.send = function scriptedSend(code, data, context) {
    if (code === 530 && data === AUTH_REQUIRED_SENTINEL && authRequiredReply) {
        return writeRaw(this, authRequiredReply);
    }
    const queue = this.session && this.session.__scripted;
    if (queue && queue.length && queue[0].code === code) {
        return writeRaw(this, queue.shift().parsed);
    }
    return originalSend.call(this, code, data, context);
};

// ---------------------------------------------------------------- maildir
class Maildir {
    constructor(dir) {
        this.dir = dir;
        fs.mkdirSync(dir, { recursive: true });
        let highest = 0;
        for (const name of fs.readdirSync(dir)) {
            const m = /^(\d+)\.json$/.exec(name);
            if (m) highest = Math.max(highest, Number(m[1]));
        }
        this.next = highest + 1;
    }
    save(record) {
        const n = this.next++;
        const final = path.join(this.dir, n + '.json');
        const tmp = path.join(this.dir, '.' + n + '.json.tmp');
        fs.writeFileSync(tmp, JSON.stringify(record) + '\n');
        fs.renameSync(tmp, final);
        return final;
    }
}

// ---------------------------------------------------------------- XOAUTH2
const GOOGLE_XOAUTH2_CHALLENGE = { status: '400', schemes: 'Bearer', scope: 'https://mail.google.com/' };

const JWT_ALGS = {
    RS256: { hash: 'sha256' },
    RS384: { hash: 'sha384' },
    RS512: { hash: 'sha512' },
    PS256: { hash: 'sha256', pss: true },
    PS384: { hash: 'sha384', pss: true },
    PS512: { hash: 'sha512', pss: true },
    ES256: { hash: 'sha256', ec: true },
    ES384: { hash: 'sha384', ec: true },
    ES512: { hash: 'sha512', ec: true },
    EdDSA: { hash: null }
};

/** True when token is a JWT signed by a key of the JWKS at url and not expired. */
async function jwtValidAgainstJwks(token, url) {
    const parts = token.split('.');
    if (parts.length !== 3) return false;
    let header, payload;
    try {
        header = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
        payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
    } catch (e) {
        return false;
    }
    const alg = JWT_ALGS[header.alg];
    if (!alg) return false;
    const now = Math.floor(Date.now() / 1000);
    if (typeof payload.exp === 'number' && payload.exp < now) return false;
    if (typeof payload.nbf === 'number' && payload.nbf > now + 60) return false;
    const res = await fetch(url);
    if (!res.ok) throw new Error('JWKS ' + url + ' answered HTTP ' + res.status);
    const jwks = await res.json();
    const keys = (jwks.keys || []).filter(k => !header.kid || k.kid === header.kid);
    const signed = Buffer.from(parts[0] + '.' + parts[1]);
    const sig = Buffer.from(parts[2], 'base64url');
    for (const jwk of keys) {
        try {
            const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
            const opts = { key };
            if (alg.pss) {
                opts.padding = crypto.constants.RSA_PKCS1_PSS_PADDING;
                opts.saltLength = crypto.constants.RSA_PSS_SALTLEN_DIGEST;
            }
            if (alg.ec) opts.dsaEncoding = 'ieee-p1363';
            if (crypto.verify(alg.hash, signed, opts, sig)) return true;
        } catch (e) {
            // a key of another type: try the next one
        }
    }
    return false;
}

function assertLoopbackUrl(u, what) {
    let url;
    try {
        url = new URL(u);
    } catch (e) {
        die(what + ' is not a URL: ' + u);
    }
    const host = url.hostname.replace(/^\[|\]$/g, '');
    if (!(host === 'localhost' || host === '::1' || /^127\./.test(host))) {
        die(what + ' must point at loopback (127.0.0.0/8, localhost, ::1): ' + u);
    }
}

// ---------------------------------------------------------------- server
function timingSafeStrEq(a, b) {
    const x = Buffer.from(String(a));
    const y = Buffer.from(String(b));
    return x.length === y.length && crypto.timingSafeEqual(x, y);
}

function main() {
    const { spec, maildir } = parseArgs(process.argv.slice(2));
    const store = new Maildir(maildir);

    const authSpec = spec.auth || {};
    if (typeof authSpec !== 'object' || Array.isArray(authSpec)) die('auth must be an object');
    const authReply = authSpec.reply !== undefined ? parseReply(authSpec.reply, 'auth.reply') : null;
    const hasCredentials = authSpec.user !== undefined || authSpec.password !== undefined;
    const xoTokens = spec.xoauth2Tokens !== undefined ? [].concat(spec.xoauth2Tokens).map(String) : null;
    const xoJwks = spec.xoauth2Jwks || null;
    if (xoJwks) assertLoopbackUrl(xoJwks, 'xoauth2Jwks');
    const xoError = parseReply(spec.xoauth2Error || '535 5.7.8 Username and Password not accepted', 'xoauth2Error');
    const xoConfigured = xoTokens !== null || xoJwks !== null;

    const greeting = spec.greeting !== undefined ? parseReply(spec.greeting, 'greeting') : null;
    const mailFrom = spec.mailFrom !== undefined ? parseReply(spec.mailFrom, 'mailFrom') : null;
    const dataReply = spec.data !== undefined ? parseReply(spec.data, 'data') : null;
    if (spec.holdFirstDataReply !== undefined && typeof spec.holdFirstDataReply !== 'boolean') {
        die('holdFirstDataReply must be true or false');
    }
    let holdNextDataReply = spec.holdFirstDataReply === true;
    const heldDataReplies = []; // the callbacks never called, kept for the record
    if (spec.authRequired !== undefined) authRequiredReply = parseReply(spec.authRequired, 'authRequired');
    const rcptTo = new Map();
    for (const [addr, reply] of Object.entries(spec.rcptTo || {})) {
        rcptTo.set(addr.toLowerCase(), parseReply(reply, 'rcptTo[' + addr + ']'));
    }

    let authMethods = spec.authMethods !== undefined ? [].concat(spec.authMethods).map(m => String(m).toUpperCase()) : null;
    if (authMethods === null) authMethods = xoConfigured ? ['PLAIN', 'LOGIN', 'XOAUTH2'] : ['PLAIN', 'LOGIN'];
    const authConfigured = hasCredentials || authReply !== null || xoConfigured;
    const authOptional = typeof spec.authOptional === 'boolean' ? spec.authOptional : !authConfigured || authMethods.length === 0;

    const secure = !!spec.secure;
    const starttls = !secure && !!spec.starttls;
    const disabledCommands = [];
    if (!starttls) disabledCommands.push('STARTTLS');
    if (authMethods.length === 0) disabledCommands.push('AUTH');

    /** Answers an auth attempt with a scripted reply (2xx = accepted). */
    function scriptedAuth(parsed, username, callback, session) {
        if (parsed.code < 400) {
            expectSend(session, 235, parsed);
            return callback(null, { user: username });
        }
        expectSend(session, parsed.code, parsed);
        return callback(scriptedError(parsed));
    }

    function rejectXoauth2(session, callback) {
        // Google: 334 <base64 JSON>, the client sends an empty line, then 535
        expectSend(session, 535, xoError);
        return callback(null, { data: GOOGLE_XOAUTH2_CHALLENGE });
    }

    const options = {
        name: spec.name || 'localhost',
        logger: false,
        secure,
        hideSTARTTLS: !starttls,
        disabledCommands,
        authMethods: authMethods.length ? authMethods : ['PLAIN'],
        authOptional,
        allowInsecureAuth: true,
        disableReverseLookup: true,
        hideENHANCEDSTATUSCODES: !spec.enhancedStatusCodes,
        closeTimeout: 100,
        // the 530 for MAIL/RCPT/DATA before AUTH has no callback: recognise it by its text
        authRequiredMessage: authRequiredReply ? AUTH_REQUIRED_SENTINEL : undefined,

        onConnect(session, callback) {
            if (!greeting) return callback();
            if (greeting.code < 400) {
                expectSend(session, 220, greeting);
                return callback();
            }
            log('refusing connection with', JSON.stringify(greeting.lines[0]));
            expectSend(session, greeting.code, greeting);
            return callback(scriptedError(greeting));
        },

        onAuth(auth, session, callback) {
            const username = auth.username;
            if (auth.method === 'XOAUTH2') {
                if (xoConfigured) {
                    if (xoTokens && xoTokens.some(t => timingSafeStrEq(t, auth.accessToken))) {
                        return callback(null, { user: username });
                    }
                    if (!xoJwks) return rejectXoauth2(session, callback);
                    jwtValidAgainstJwks(auth.accessToken, xoJwks).then(
                        ok => (ok ? callback(null, { user: username }) : rejectXoauth2(session, callback)),
                        err => {
                            log('XOAUTH2 JWKS check failed:', err.message);
                            rejectXoauth2(session, callback);
                        }
                    );
                    return undefined;
                }
                if (authReply) return scriptedAuth(authReply, username, callback, session);
                if (hasCredentials) return rejectXoauth2(session, callback);
                return callback(null, { user: username });
            }
            if (hasCredentials) {
                const userOk = authSpec.user === undefined || timingSafeStrEq(authSpec.user, username);
                let passOk;
                if (auth.method === 'CRAM-MD5') passOk = auth.validatePassword(String(authSpec.password || ''));
                else passOk = authSpec.password === undefined || timingSafeStrEq(authSpec.password, auth.password);
                if (userOk && passOk) return callback(null, { user: username });
                if (authReply) return scriptedAuth(authReply, username, callback, session);
                return callback(null, {}); // smtp-server's own 535 credentials-invalid reply
            }
            if (authReply) return scriptedAuth(authReply, username, callback, session);
            return callback(null, { user: username });
        },

        onMailFrom(address, session, callback) {
            if (!mailFrom) return callback();
            if (mailFrom.code < 400) {
                expectSend(session, 250, mailFrom);
                return callback();
            }
            expectSend(session, mailFrom.code, mailFrom);
            return callback(scriptedError(mailFrom));
        },

        onRcptTo(address, session, callback) {
            const reply = rcptTo.get(String(address.address).toLowerCase());
            if (!reply) return callback();
            if (reply.code < 400) {
                expectSend(session, 250, reply);
                return callback();
            }
            expectSend(session, reply.code, reply);
            return callback(scriptedError(reply));
        },

        onData(stream, session, callback) {
            const chunks = [];
            stream.on('data', chunk => chunks.push(chunk));
            stream.on('end', () => {
                if (dataReply && dataReply.code >= 400) {
                    expectSend(session, dataReply.code, dataReply);
                    return callback(scriptedError(dataReply));
                }
                const record = {
                    mail_from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
                    rcpt_tos: session.envelope.rcptTo.map(r => r.address),
                    data: Buffer.concat(chunks).toString('utf8'),
                    auth_login: session.user === undefined || session.user === null ? null : String(session.user)
                };
                try {
                    const file = store.save(record);
                    log('accepted message from', JSON.stringify(record.mail_from), 'to', JSON.stringify(record.rcpt_tos), '->', file);
                } catch (e) {
                    log('could not save message:', e.message);
                    return callback(Object.assign(new Error('Error: could not store message'), { responseCode: 451 }));
                }
                if (holdNextDataReply) {
                    holdNextDataReply = false;
                    heldDataReplies.push(callback);
                    log('holding the end-of-DATA reply to', JSON.stringify(record.mail_from), 'for good');
                    return undefined;
                }
                if (dataReply) expectSend(session, 250, dataReply);
                return callback();
            });
        }
    };

    if (spec.cert || spec.key) {
        if (!(spec.cert && spec.key)) die('cert and key go together');
        try {
            options.cert = fs.readFileSync(spec.cert);
            options.key = fs.readFileSync(spec.key);
        } catch (e) {
            die('cannot read cert/key: ' + e.message);
        }
    } else if (secure || starttls) {
        log('no cert/key given: using smtp-server\'s built-in test certificate');
    }

    const server = new SMTPServer(options);
    server.on('error', err => log('error:', err.message));

    server.listen(0, '127.0.0.1', () => {
        const port = server.server.address().port;
        log('listening on 127.0.0.1:' + port, 'secure=' + secure, 'starttls=' + starttls,
            'authMethods=' + (authMethods.join(',') || 'none'), 'authOptional=' + authOptional);
        process.stdout.write('READY ' + port + '\n');
    });

    let stopping = false;
    const stop = sig => {
        if (stopping) return;
        stopping = true;
        log('stopping on', sig);
        server.close(() => process.exit(0));
        setTimeout(() => process.exit(0), 2000).unref();
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
}

main();

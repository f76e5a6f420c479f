'use strict';
/*
 * The web console in a real browser: playwright-core driving Debian's
 * Chromium against the real `herald serve` binary (target/debug/herald, or
 * HERALD_BIN), on a fresh data directory and a free port, with the real test
 * peers: aiosmtpd (tests/peers/smtp_auth_server.py), the OAuth2 server
 * (tests/peers/oauth_server.js), the XOAUTH2 SMTP peer
 * (tests/peers/scripted_smtp.js), the DingTalk robot
 * (tests/peers/robot_receiver.js) and the DNS server the DKIM check asks
 * (tests/peers/dkim_peers.py dns, HERALD_DNS_SERVER).
 *
 *   node --test --test-reporter=tap tests/console/
 *
 * The tests run in order and build on each other, as a newcomer would go:
 * set the password, add a service, test it, fix it, write a rule, read the
 * log. Screenshots of every page (1280 px and 390 px wide) go to
 * target/console-screenshots/.
 */

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');
const readline = require('node:readline');

const repo = path.resolve(__dirname, '..', '..');
const { chromium } = require(path.join(repo, 'tests/peers/node_modules/playwright-core'));

const ADMIN_PASSWORD = 'correct horse battery';
const ADMIN_TOKEN = 'hrd_console_test_admin_token_0123456789';
const SHOTS = path.join(repo, 'target', 'console-screenshots');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
/** Generous: a loaded two-core machine. */
const LONG = 60_000;

const children = [];
let browser;
let herald; // { base, setupLink, proc, dataDir, stderr }
let smtp; // aiosmtpd with AUTH
let oauth; // { port, control }
let xoauth; // XOAUTH2 SMTP peer
let context;
let page;
let qqAccountUrl;
let dns; // { port, records }: the DNS server the DKIM check asks
let oauthAccountUrl;

// ------------------------------------------------------------------ helpers

function freePort() {
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => {
            const { port } = s.address();
            s.close(() => resolve(port));
        });
    });
}

/** Starts a peer that prints `READY <port> [<port>]` on stdout; answers the ports. */
function startPeer(cmd, args, name) {
    return new Promise((resolve, reject) => {
        const proc = spawn(cmd, args, { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
        children.push(proc);
        let err = '';
        proc.stderr.on('data', d => { err += d; });
        const timer = setTimeout(() => reject(new Error(`${name} did not start: ${err}`)), LONG);
        const rl = readline.createInterface({ input: proc.stdout });
        rl.on('line', line => {
            const m = line.match(/^READY (\d+)(?: (\d+))?/);
            if (m) {
                clearTimeout(timer);
                resolve({ proc, ports: [Number(m[1]), m[2] ? Number(m[2]) : null], stderr: () => err });
            }
        });
        proc.on('exit', code => { clearTimeout(timer); reject(new Error(`${name} exited (${code}): ${err}`)); });
    });
}

/** `herald serve` on a fresh data directory; answers once it printed the setup link. */
async function startHerald() {
    const bin = process.env.HERALD_BIN || path.join(repo, 'target', 'debug', 'herald');
    assert.ok(fs.existsSync(bin), `${bin} is built (cargo build)`);
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-console-'));
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const proc = spawn(bin, ['serve'], {
        cwd: dataDir,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
            ...process.env,
            HERALD_DATA_DIR: dataDir,
            HERALD_LISTEN: `127.0.0.1:${port}`,
            HERALD_PUBLIC_URL: base,
            HERALD_ADMIN_TOKEN: ADMIN_TOKEN,
            HERALD_RETRY_MIN_SECS: '1',
            HERALD_RETRY_MAX_SECS: '2',
            HERALD_LOG: 'info,sqlx=warn',
            HERALD_DNS_SERVER: `127.0.0.1:${dns.port}`,
        },
    });
    children.push(proc);
    let stderr = '';
    const setupLink = await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('herald printed no setup link:\n' + stderr)), LONG);
        proc.stderr.on('data', d => {
            stderr += d;
            const m = stderr.match(/(http:\/\/\S+\/setup\/\S+)/);
            if (m) { clearTimeout(timer); resolve(m[1]); }
        });
        proc.on('exit', code => { clearTimeout(timer); reject(new Error(`herald exited (${code}):\n${stderr}`)); });
    });
    // The server listens once it printed the link; wait for /healthz anyway.
    await until(async () => (await fetch(base + '/healthz').catch(() => null))?.ok, 'herald answers /healthz');
    return { base, setupLink, proc, dataDir, stderr: () => stderr };
}

/** Polls `cond` until it is truthy (no fixed sleeps). */
async function until(cond, what, limit = LONG) {
    const deadline = Date.now() + limit;
    for (;;) {
        const v = await cond();
        if (v) return v;
        if (Date.now() > deadline) throw new Error('timed out waiting until ' + what);
        await new Promise(r => setTimeout(r, 100));
    }
}

async function api(method, p, body) {
    const r = await fetch(herald.base + p, {
        method,
        headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    return { status: r.status, json: text ? JSON.parse(text) : null };
}

async function controlPost(p, body) {
    const r = await fetch(`http://127.0.0.1:${oauth.control}${p}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body || {}),
    });
    assert.ok(r.ok, `oauth control ${p}: ${r.status} ${await r.text()}`);
}

/** What the DNS peer answers from now on: TXT records by name. */
function publish(records) {
    const tmp = dns.records + '.tmp';
    fs.writeFileSync(tmp, JSON.stringify(records));
    fs.renameSync(tmp, dns.records);
}

function maildirCount(dir) {
    return fs.readdirSync(dir).filter(n => /^\d+\.json$/.test(n)).length;
}

function maildirMessages(dir) {
    return fs.readdirSync(dir)
        .filter(n => /^\d+\.json$/.test(n))
        .sort((a, b) => parseInt(a) - parseInt(b))
        .map(n => JSON.parse(fs.readFileSync(path.join(dir, n), 'utf8')));
}

/** Screenshots of the page at desktop and phone width. */
async function shoot(p, name) {
    fs.mkdirSync(SHOTS, { recursive: true });
    await p.setViewportSize({ width: 1280, height: 900 });
    await p.screenshot({ path: path.join(SHOTS, `${name}-desktop.png`), fullPage: true });
    await p.setViewportSize({ width: 390, height: 844 });
    await p.screenshot({ path: path.join(SHOTS, `${name}-phone.png`), fullPage: true });
    await p.setViewportSize({ width: 1280, height: 900 });
}

// ------------------------------------------------------------------ set-up

before(async () => {
    const mail1 = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-console-smtp-'));
    const s = await startPeer('python3', [
        'tests/peers/smtp_auth_server.py', '--maildir', mail1,
        '--user', 'me@qq.com', '--password', 'the-authorization-code',
    ], 'aiosmtpd');
    smtp = { port: s.ports[0], maildir: mail1 };

    const o = await startPeer('node', ['tests/peers/oauth_server.js'], 'oauth_server');
    oauth = { port: o.ports[0], control: o.ports[1] };

    const mail2 = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-console-xoauth-'));
    const x = await startPeer('node', [
        'tests/peers/scripted_smtp.js',
        '--spec', JSON.stringify({ authMethods: ['XOAUTH2'], xoauth2Jwks: `http://127.0.0.1:${oauth.port}/jwks` }),
        '--maildir', mail2,
    ], 'scripted_smtp');
    xoauth = { port: x.ports[0], maildir: mail2 };

    const dnsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-console-dns-'));
    const records = path.join(dnsDir, 'records.json');
    fs.writeFileSync(records, '{}');
    const d = await startPeer('python3', ['tests/peers/dkim_peers.py', 'dns', '--records', records], 'dns');
    dns = { port: d.ports[0], records };

    herald = await startHerald();
    browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
            '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    context = await browser.newContext({ locale: 'en-US', viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.on('dialog', d => d.accept());
});

after(async () => {
    if (browser) await browser.close().catch(() => {});
    for (const c of children.reverse()) {
        if (c.exitCode === null) c.kill('SIGTERM');
    }
    await Promise.all(children.map(c => c.exitCode === null
        ? new Promise(r => { const t = setTimeout(() => { c.kill('SIGKILL'); r(); }, 20_000); c.once('exit', () => { clearTimeout(t); r(); }); })
        : null));
    if (herald) fs.rmSync(herald.dataDir, { recursive: true, force: true });
});

// ------------------------------------------------------------------ tests

test('the console asks to sign in, with security headers and no inline script', async () => {
    const r = await page.goto(herald.base + '/');
    assert.match(page.url(), /\/signin$/);
    const h = r.headers();
    assert.match(h['content-security-policy'], /script-src 'self'/);
    assert.match(h['content-security-policy'], /frame-ancestors 'none'/);
    assert.equal(h['x-content-type-options'], 'nosniff');
    assert.equal(h['x-frame-options'], 'DENY');
    assert.ok(h['referrer-policy']);
    assert.equal(await page.locator('script:not([src])').count(), 0);
    await shoot(page, 'signin');
});

test('the setup link printed at first start sets the admin password, once', async () => {
    assert.match(herald.setupLink, new RegExp('^' + herald.base + '/setup/'));
    await page.goto(herald.setupLink);
    await shoot(page, 'setup');
    // Too short: the error is next to the field.
    await page.fill('#password', 'short');
    await page.fill('#confirm', 'short');
    await page.click('button[type=submit]');
    assert.match(await page.locator('.field-error').first().innerText(), /at least 10/);
    await page.fill('#password', ADMIN_PASSWORD);
    await page.fill('#confirm', ADMIN_PASSWORD);
    await page.click('button[type=submit]');
    await page.waitForURL(herald.base + '/?done=password_set');
    assert.match(await page.locator('.notice').innerText(), /password is set/);
    const cookies = await context.cookies();
    const session = cookies.find(c => c.name === 'herald_session');
    assert.ok(session && session.httpOnly && session.sameSite === 'Lax', JSON.stringify(cookies));
    // The link works once.
    const other = await browser.newContext();
    const p2 = await other.newPage();
    const r = await p2.goto(herald.setupLink);
    assert.equal(r.status(), 404);
    assert.match(await p2.locator('.error').innerText(), /already used or has expired/);
    await other.close();
    await shoot(page, 'overview-empty');
});

test('a form without its CSRF token is refused', async () => {
    const r = await page.request.post(herald.base + '/settings', {
        form: { from_name: 'Mallory' },
        maxRedirects: 0,
    });
    assert.equal(r.status(), 403);
    assert.match(await r.text(), /The form was refused/);
    const bad = await page.request.post(herald.base + '/settings', {
        form: { from_name: 'Mallory', csrf: 'hrd_not_the_token' },
        maxRedirects: 0,
    });
    assert.equal(bad.status(), 403);
    // Nothing was saved.
    const s = await api('GET', '/api/v1/settings');
    assert.notEqual(s.json.from_name, 'Mallory');
});

test('add a QQ Mail account: the address proposes the preset and its advice', async () => {
    await page.goto(herald.base + '/accounts/new');
    await page.fill('#address', 'me@qq.com');
    await page.click('#discover');
    await page.waitForSelector('#proposal');
    assert.match(await page.locator('#proposal').innerText(), /smtp\.qq\.com/);
    assert.equal(await page.locator('#provider').inputValue(), 'qq');
    assert.equal(await page.locator('#host').inputValue(), 'smtp.qq.com');
    const advice = page.locator('[data-advice-for="qq"]');
    assert.ok(await advice.isVisible());
    assert.match(await advice.innerText(), /authorization code/i);
    // Choosing SendGrid in the list fills its server and shows its advice (the script).
    await page.selectOption('#provider', 'sendgrid');
    assert.equal(await page.locator('#username').inputValue(), 'apikey');
    assert.ok(await page.locator('[data-advice-for="sendgrid"]').isVisible());
    assert.ok(!(await advice.isVisible()));
    await page.selectOption('#provider', 'qq');
    await page.fill('#username', '');
    await shoot(page, 'account-new');
    // Pointed at the local SMTP peer, with the login password instead of the code.
    await page.fill('#name', 'QQ Mail');
    await page.fill('#host', '127.0.0.1');
    await page.fill('#port', String(smtp.port));
    await page.selectOption('#security', 'none');
    await page.fill('#secret', 'my-login-password');
    await page.click('#save-account');
    await page.waitForURL(/\/accounts\/[^/]+\?done=done_created$/);
    qqAccountUrl = page.url().split('?')[0];
    assert.match(await page.locator('#account-status').innerText(), /Not tested/);
    // The secret never comes back into the page.
    assert.ok(!(await page.content()).includes('my-login-password'));
});

test('a failing test email shows the stage, the hint and the masked transcript', async () => {
    await page.goto(qqAccountUrl);
    await page.fill('#to', 'someone@example.com');
    await page.click('#send-test');
    await page.waitForSelector('#test-report');
    // Sent in the background by the script: the page stayed where it was.
    assert.equal(page.url(), qqAccountUrl);
    const report = await page.locator('#test-report').innerText();
    assert.match(report, /failed at: sign-in \(AUTH\)/, report);
    assert.match(report, /535/);
    assert.match(await page.locator('#test-hint').innerText(), /authorization code/i);
    const transcript = await page.locator('#transcript').innerText();
    assert.match(transcript, /AUTH/);
    assert.ok(!transcript.includes('my-login-password'), transcript);
    assert.match(await page.locator('#account-status').innerText(), /Failing/);
    await shoot(page, 'account-test-failed');
});

test('with the authorization code the test email says configured successfully', async () => {
    await page.goto(qqAccountUrl);
    // Edit: only the secret; empty fields keep the others.
    await page.fill('#secret', 'the-authorization-code');
    await page.click('#save-account');
    await page.waitForURL(/done=done_saved/);
    await page.fill('#to', 'someone@example.com');
    await page.click('#send-test');
    await page.waitForSelector('#test-report.ok');
    assert.match(await page.locator('#test-report').innerText(), /configured successfully/);
    assert.match(await page.locator('#account-status').innerText(), /Ready/);
    await until(() => maildirCount(smtp.maildir) >= 1, 'the test email reached aiosmtpd');
    assert.equal(maildirMessages(smtp.maildir)[0].auth_login, 'me@qq.com');
    await shoot(page, 'account-test-ok');
    await page.goto(herald.base + '/accounts');
    await shoot(page, 'accounts');
});

test('a DKIM key: add it, copy its TXT record, and Check DNS says missing, then published', async () => {
    await page.goto(herald.base + '/dkim');
    assert.equal(await page.locator('nav a[aria-current="page"]').innerText(), 'DKIM');
    assert.ok(await page.locator('#no-dkim').isVisible());
    // A bad domain: the error is next to the field, and nothing is created.
    await page.fill('#domain', 'not a domain');
    await page.click('#add-dkim');
    await page.waitForSelector('.field-error');
    assert.equal(await page.locator('#domain').inputValue(), 'not a domain');
    assert.equal((await api('GET', '/api/v1/dkim')).json.length, 0);
    // RSA-2048 by default, the selector Herald picks.
    await page.fill('#domain', 'Herald.Test');
    assert.equal(await page.locator('#algorithm').inputValue(), 'rsa-sha256');
    await page.click('#add-dkim');
    await page.waitForURL(/\/dkim\?done=done_dkim_created/, { timeout: LONG });
    const keys = (await api('GET', '/api/v1/dkim')).json;
    assert.equal(keys.length, 1);
    const key = keys[0];
    const card = page.locator(`#key-${key.id}`);
    assert.match(await card.locator('[data-dkim-status]').innerText(), /Not checked/);
    assert.equal(await card.locator('[data-dns-name]').innerText(), `${key.selector}._domainkey.herald.test`);
    const value = await card.locator('[data-dns-value]').innerText();
    assert.equal(value, key.dns_value);
    assert.match(value, /^v=DKIM1; k=rsa; p=MII/);
    // The copy button selects the whole record (the script).
    await card.locator('button[data-copy^="dns-value-"]').click();
    assert.equal(await page.evaluate(() => String(window.getSelection())), value);
    await shoot(page, 'dkim-unchecked');
    // Nothing published yet: the check says missing, with what to do.
    await card.locator('[data-check]').click();
    await until(async () => /Missing/.test(await page.locator(`#key-${key.id} [data-dkim-status]`).innerText()),
        'the check says missing');
    const hint = await page.locator(`#key-${key.id} [data-dkim-hint]`).innerText();
    assert.match(hint, new RegExp(`No TXT record at ${key.selector}\\._domainkey\\.herald\\.test`), hint);
    assert.ok(hint.includes(value), hint);
    assert.equal((await api('GET', `/api/v1/dkim/${key.id}`)).json.status, 'missing');
    await shoot(page, 'dkim-missing');
    // Published at the DNS server: the check says so.
    publish({ [key.dns_name]: [value] });
    await page.locator(`#key-${key.id} [data-check]`).click();
    await until(async () => /Published/.test(await page.locator(`#key-${key.id} [data-dkim-status]`).innerText()),
        'the check says published');
    assert.match(await page.locator(`#key-${key.id} [data-dkim-hint]`).innerText(), /matches this key/);
    await shoot(page, 'dkim-published');
});

test('an account\'s proxy and pinned certificate are kept after save; the proxy password never comes back', async () => {
    await page.goto(herald.base + '/accounts/new');
    await page.fill('#address', 'ops@proxied.example');
    await page.fill('#name', 'Behind the proxy');
    await page.fill('#host', '127.0.0.1');
    await page.fill('#port', '2525');
    await page.selectOption('#security', 'none');
    await page.fill('#secret', 'smtp-password');
    // Collapsed until opened.
    assert.ok(!(await page.locator('#proxy_host').isVisible()));
    await page.click('#proxy-section summary');
    await page.selectOption('#proxy_kind', 'http');
    await page.fill('#proxy_host', '127.0.0.1');
    await page.fill('#proxy_port', '3128');
    await page.fill('#proxy_username', 'corp-user');
    await page.fill('#proxy_secret', 'proxy-pass-123');
    await page.fill('#pin_sha256', 'not-a-fingerprint');
    await page.click('#save-account');
    // A bad pin: the error is next to the pin field, the proxy fields stay as typed.
    await page.waitForSelector('#pin_sha256 ~ .field-error');
    assert.equal(await page.locator('#proxy_host').inputValue(), '127.0.0.1');
    assert.equal(await page.locator('#proxy_kind').inputValue(), 'http');
    const pin = 'ab'.repeat(32);
    await page.fill('#pin_sha256', pin);
    await page.fill('#secret', 'smtp-password');
    if (!(await page.locator('#proxy_secret').isVisible())) await page.click('#proxy-section summary');
    await page.fill('#proxy_secret', 'proxy-pass-123');
    await page.click('#save-account');
    await page.waitForURL(/\/accounts\/[^/]+\?done=done_created$/);
    const url = page.url().split('?')[0];
    const id = url.split('/').pop();
    assert.match(await page.locator('#proxy-summary').innerText(), /HTTP proxy .*127\.0\.0\.1:3128/);
    assert.equal(await page.locator('#proxy_kind').inputValue(), 'http');
    assert.equal(await page.locator('#proxy_port').inputValue(), '3128');
    assert.equal(await page.locator('#proxy_username').inputValue(), 'corp-user');
    assert.equal(await page.locator('#proxy_secret').inputValue(), '');
    assert.equal(await page.locator('#pin_sha256').inputValue(), pin);
    assert.ok(!(await page.content()).includes('proxy-pass-123'));
    await page.click('#proxy-section summary');
    await shoot(page, 'account-proxy');
    // Saved again without touching the password: it is kept.
    await page.fill('#from_name', 'Ops');
    await page.click('#save-account');
    await page.waitForURL(/done=done_saved/);
    let a = (await api('GET', `/api/v1/accounts/${id}`)).json;
    assert.deepEqual(a.proxy, { kind: 'http', host: '127.0.0.1', port: 3128, username: 'corp-user', secret_set: true });
    assert.equal(a.tls.pin_sha256, pin);
    assert.equal(a.from.name, 'Ops');
    // Back to the platform default, and no pin.
    await page.click('#proxy-section summary');
    await page.selectOption('#proxy_kind', '');
    await page.fill('#pin_sha256', '');
    await page.click('#save-account');
    await page.waitForURL(/done=done_saved/);
    a = (await api('GET', `/api/v1/accounts/${id}`)).json;
    assert.equal(a.proxy, undefined, JSON.stringify(a.proxy));
    assert.equal(a.tls.pin_sha256, null);
    assert.match(await page.locator('#proxy-summary').innerText(), /Platform default/);
    assert.equal((await api('DELETE', `/api/v1/accounts/${id}`)).status, 204);
});

test('a test email refused for a self-signed certificate shows it, and "Trust this certificate" pins it', async () => {
    // The usual one-step self-signed certificate, served by aiosmtpd over TLS.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-console-cert-'));
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    const { execFileSync } = require('node:child_process');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
        '-subj', '/CN=localhost', '-keyout', key, '-out', cert], { stdio: 'pipe' });
    const fingerprint = execFileSync('openssl', ['x509', '-noout', '-fingerprint', '-sha256', '-in', cert])
        .toString().trim().split('=')[1].replace(/:/g, '').toLowerCase();
    const maildir = fs.mkdtempSync(path.join(os.tmpdir(), 'herald-console-tls-'));
    const peer = await startPeer('python3', ['tests/peers/smtp_auth_server.py', '--mode', 'tls',
        '--cert', cert, '--key', key, '--maildir', maildir], 'aiosmtpd (TLS)');
    const created = await api('POST', '/api/v1/accounts', {
        name: 'Office server', provider: 'custom', host: 'localhost', port: peer.ports[0], security: 'tls',
        auth: { method: 'none' }, from: { address: 'noreply@herald.test' }, timeout_secs: 20,
    });
    assert.equal(created.status, 201, JSON.stringify(created.json));
    const id = created.json.id;
    await page.goto(herald.base + `/accounts/${id}`);
    await page.fill('#to', 'someone@example.com');
    await page.click('#send-test');
    await page.waitForSelector('#test-report.bad', { timeout: LONG });
    // The certificate, and the advice to compare before trusting it.
    assert.equal(await page.locator('#cert-sha256').innerText(), fingerprint);
    assert.match(await page.locator('#test-certificate').innerText(), /CN=localhost/);
    assert.match(await page.locator('#cert-compare').innerText(), /compare this fingerprint/);
    await shoot(page, 'account-certificate');
    await page.click('#trust-certificate'); // the confirmation is accepted
    await page.waitForURL(/done=done_pinned/);
    assert.equal(await page.locator('#pin_sha256').inputValue(), fingerprint);
    assert.equal((await api('GET', `/api/v1/accounts/${id}`)).json.tls.pin_sha256, fingerprint);
    // Trusted now: the test email goes through.
    await page.fill('#to', 'someone@example.com');
    await page.click('#send-test');
    await page.waitForSelector('#test-report.ok', { timeout: LONG });
    await until(() => maildirCount(maildir) >= 1, 'the test email reached the TLS server');
    assert.equal((await api('DELETE', `/api/v1/accounts/${id}`)).status, 204);
    peer.proc.kill('SIGTERM');
});

test('create a rule, dry-run it, and find the event\'s message and attempts in the delivery log', async () => {
    await page.goto(herald.base + '/rules');
    assert.ok(await page.locator('.badge', { hasText: 'built-in' }).count() > 0, 'built-in rules are marked');
    await shoot(page, 'rules');
    await page.click('text=Add rule');
    await page.fill('#name', 'Backups');
    await page.fill('#types', 'backup.*');
    await page.selectOption('#min_severity', 'warning');
    await page.fill('#to', 'ops@example.com, not-an-address');
    await page.selectOption('#account', { label: 'QQ Mail' });
    await page.click('#save-rule');
    // A bad recipient: the error is next to the recipients' field.
    assert.equal(await page.locator('#to ~ .field-error').count(), 1);
    await page.fill('#to', 'ops@example.com');
    await page.click('#save-rule');
    await page.waitForURL(/\/rules\/[^/]+\?done=done_created$/);
    // Dry run with the sample event.
    await page.fill('#event_type', 'backup.failed');
    await page.click('#run-dry');
    await page.waitForSelector('#dry-result');
    const dry = await page.locator('#dry-result').innerText();
    assert.match(dry, /matches/);
    assert.match(dry, /ops@example\.com/);
    assert.match(dry, /简体中文/);
    assert.match(dry, /\[警告\]/);
    await shoot(page, 'rule-dry-run');

    const before = maildirCount(smtp.maildir);
    const ev = await api('POST', '/api/v1/events', { type: 'backup.failed', severity: 'error', title: 'Nightly backup failed', message: 'exit code 2' });
    assert.equal(ev.status, 202, JSON.stringify(ev.json));
    assert.equal(ev.json.messages.length, 1);
    const id = ev.json.messages[0];
    await until(() => maildirCount(smtp.maildir) > before, 'the rule\'s message reached aiosmtpd');
    await until(async () => (await api('GET', `/api/v1/messages/${id}`)).json.status === 'sent', 'the message is sent');

    await page.goto(herald.base + '/messages?status=sent');
    await shoot(page, 'messages');
    await page.click(`a[href="/messages/${id}"]`);
    assert.match(await page.locator('#message-status').innerText(), /Sent/);
    const attempts = await page.locator('#attempts li').allInnerTexts();
    assert.equal(attempts.length, 1, attempts.join('\n'));
    assert.match(attempts[0], /Sent/);
    assert.match(attempts[0], /QQ Mail/);
    await shoot(page, 'message');
    // Filters: no failed message.
    await page.goto(herald.base + '/messages?status=failed');
    assert.match(await page.locator('main').innerText(), /No messages/);
});

test('an OAuth2 account is authorized, expires, shows the warning and is re-authorized with its held message sent', async () => {
    // Tokens stale at once: every send asks the token endpoint.
    await controlPost('/config', { expires_in: 0 });
    await page.goto(herald.base + '/accounts/new');
    await page.fill('#address', 'mailer@herald.test');
    await page.fill('#name', 'Workspace');
    await page.selectOption('#provider', 'custom');
    await page.fill('#host', '127.0.0.1');
    await page.fill('#port', String(xoauth.port));
    await page.selectOption('#security', 'none');
    await page.selectOption('#auth_method', 'oauth2');
    assert.ok(await page.locator('#redirect_uri').isVisible());
    assert.equal(await page.locator('#redirect_uri').inputValue(), herald.base + '/oauth2/callback');
    await page.selectOption('#oauth_provider', 'custom');
    await page.fill('#oauth_client_id', 'herald-test');
    await page.fill('#oauth_client_secret', 'test-secret');
    await page.fill('#oauth_authorize_url', `http://127.0.0.1:${oauth.port}/authorize`);
    await page.fill('#oauth_token_url', `http://127.0.0.1:${oauth.port}/token`);
    await page.fill('#oauth_scope', 'openid email');
    await shoot(page, 'account-new-oauth');
    await page.click('#save-account');
    await page.waitForURL(/\/accounts\/[^/]+\?done=done_created$/);
    oauthAccountUrl = page.url().split('?')[0];
    const accountId = oauthAccountUrl.split('/').pop();
    assert.match(await page.locator('#account-status').innerText(), /Authorization required/);
    assert.match(await page.locator('#token-status').innerText(), /Not generated/);
    assert.ok(!(await page.content()).includes('test-secret'));

    // "Generate access token": through the provider and back to this page.
    await page.click('#reauthorize');
    await page.waitForURL(oauthAccountUrl + '?authorized=1', { timeout: LONG });
    assert.match(await page.locator('.notice').innerText(), /Authorization complete/);
    assert.match(await page.locator('#account-status').innerText(), /Ready/);
    assert.match(await page.locator('#token-status').innerText(), /Generated/);

    // The provider revokes the grant: the test email finds out.
    await controlPost('/revoke-all');
    await page.fill('#to', 'someone@example.com');
    await page.click('#send-test');
    await page.waitForSelector('#test-report');
    assert.match(await page.locator('#test-report').innerText(), /OAuth2 token/);
    assert.match(await page.locator('#expired-warning').innerText(), /Authorization has expired\. Reauthorize the account\./);
    await shoot(page, 'account-expired');
    await page.goto(herald.base + '/');
    assert.match(await page.locator('.banner.danger').innerText(), /Authorization has expired\. Reauthorize the account\./);
    await shoot(page, 'overview-expired');

    // A message for it is held.
    const m = await api('POST', '/api/v1/messages', { to: ['a@example.com'], subject: 'Alert', text: 'disk full', account: accountId });
    assert.equal(m.status, 202, JSON.stringify(m.json));
    await until(async () => (await api('GET', `/api/v1/messages/${m.json.id}`)).json.status === 'held', 'the message is held');
    await page.goto(oauthAccountUrl);
    assert.match(await page.locator('#expired-warning').innerText(), /1 message/);

    // Re-authorize with the button: back on the page, the held message goes out.
    await controlPost('/config', { expires_in: 3600 });
    await page.click('#reauthorize');
    await page.waitForURL(oauthAccountUrl + '?authorized=1', { timeout: LONG });
    assert.match(await page.locator('#account-status').innerText(), /Ready/);
    await until(async () => (await api('GET', `/api/v1/messages/${m.json.id}`)).json.status === 'sent', 'the held message is sent');
    await until(() => maildirMessages(xoauth.maildir).some(x => x.data.includes('disk full')), 'the held message reached the XOAUTH2 peer');
    await shoot(page, 'account-oauth-ready');
});

test('the other pages render: overview, settings, templates, capture', async () => {
    await page.goto(herald.base + '/');
    assert.equal(await page.locator('#count-sent').count(), 1);
    assert.ok(await page.locator('svg.chart').count() >= 2, 'a chart per account');
    await shoot(page, 'overview');
    // The dark theme follows the system's preference.
    await page.emulateMedia({ colorScheme: 'dark' });
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.equal(bg, 'rgb(17, 20, 24)');
    await shoot(page, 'overview-dark');
    await page.goto(qqAccountUrl);
    await shoot(page, 'account-dark');
    await page.emulateMedia({ colorScheme: 'light' });
    await page.goto(herald.base + '/');
    await page.goto(herald.base + '/settings');
    await page.fill('#admin_emails', 'admin@example.com\nnot-an-address');
    await page.click('#save-settings');
    assert.match(await page.locator('#admins-help ~ .field-error').innerText(), /not-an-address|@/);
    await page.fill('#admin_emails', 'admin@example.com');
    await page.click('#save-settings');
    await page.waitForURL(/done=done_saved/);
    assert.equal(await page.locator('#admin_emails').inputValue(), 'admin@example.com');
    await shoot(page, 'settings');
    await page.goto(herald.base + '/templates');
    await shoot(page, 'templates');
    await page.locator('table a').first().click();
    await page.fill('#subject', '{{ broken');
    await page.click('button[value=preview]');
    assert.ok(await page.locator('.field-error').count() >= 1, 'the compile error is shown');
    await shoot(page, 'template');
    await page.goto(herald.base + '/capture');
    await shoot(page, 'capture');
    // Deleting an account first names the rules that send through it.
    await page.goto(qqAccountUrl + '/delete');
    assert.match(await page.locator('#rules-using').innerText(), /Backups/);
    await shoot(page, 'account-delete');
});

test('a tenant admin, set up from the tenants page, sees only its tenant', async () => {
    await page.goto(herald.base + '/tenants');
    await page.fill('#tenant-name', 'Acme Corp');
    await page.fill('#tenant-admin', 'acme-admin');
    await page.click('#create-tenant');
    await page.waitForSelector('#tenant-created');
    const link = await page.locator('#setup-link').inputValue();
    assert.match(link, new RegExp('^' + herald.base + '/setup/'));
    const tenantToken = await page.locator('#tenant-token').inputValue();
    await shoot(page, 'tenants');
    // The platform admin sets the tenant's settings: no fallback to the platform sender.
    await page.click('#tenants a:has-text("Acme Corp")');
    await page.waitForURL(/\/tenants\/[^/]+\/settings$/);
    assert.match(await page.locator('h1').innerText(), /Settings of Acme Corp/);
    await page.uncheck('input[name=fallback_to_platform]');
    await page.click('#save-settings');
    await page.waitForURL(/\/tenants\/[^/]+\/settings\?done=done_saved$/);
    assert.equal(await page.isChecked('input[name=fallback_to_platform]'), false);
    await shoot(page, 'tenant-settings');
    // So Acme's mail, without an account of its own, goes to its capture mailbox.
    const sent = await fetch(herald.base + '/api/v1/messages', {
        method: 'POST',
        headers: { Authorization: `Bearer ${tenantToken}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ to: ['customer@example.com'], subject: 'Welcome to Acme', text: 'Hello!' }),
    });
    const body = await sent.text();
    assert.equal(sent.status, 202, body);
    const captured = JSON.parse(body);
    assert.match(captured.route, /^capture/, JSON.stringify(captured));

    const acme = await browser.newContext({ locale: 'en-US' });
    const p = await acme.newPage();
    await p.goto(link);
    await p.fill('#password', 'acme password 123');
    await p.fill('#confirm', 'acme password 123');
    await p.click('button[type=submit]');
    await p.waitForURL(herald.base + '/?done=password_set');
    assert.match(await p.locator('.who').innerText(), /acme-admin/);
    assert.equal(await p.locator('nav a[href="/tenants"]').count(), 0);
    await p.goto(herald.base + '/accounts');
    const text = await p.locator('main').innerText();
    assert.ok(!text.includes('QQ Mail') && !text.includes('Workspace'), text);
    const r = await p.goto(herald.base + '/tenants');
    assert.equal(r.status(), 403);
    const r2 = await p.goto(qqAccountUrl);
    assert.equal(r2.status(), 404);
    await p.goto(herald.base + '/messages');
    const log = await p.locator('main').innerText();
    assert.ok(log.includes('Welcome to Acme') && !log.includes('Nightly backup'), log);
    await until(async () => {
        await p.goto(herald.base + '/capture');
        return (await p.locator('main').innerText()).includes('Welcome to Acme');
    }, 'the message is in the capture mailbox');
    await shoot(p, 'tenant-capture');
    await p.goto(herald.base + '/');
    assert.match(await p.locator('.banner.info').first().innerText(), /capture mailbox/);
    await shoot(p, 'tenant-overview');
    await acme.close();
});

test('a DingTalk channel: added with its advice, tested with a wrong secret (the hint), fixed (ok), refused deletion while a rule names it, and in 简体中文', async () => {
    const SECRET = 'SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd';
    const TOKEN = 'console0123456789abcdef';
    const r = await startPeer('node', ['tests/peers/robot_receiver.js',
        '--kind', 'dingtalk', '--secret', SECRET, '--token', TOKEN], 'robot_receiver');
    const robot = `http://127.0.0.1:${r.ports[0]}`;
    await page.goto(herald.base + '/channels');
    assert.match(await page.locator('nav').innerText(), /Channels/);
    await page.click('#add-channel');
    await page.waitForURL(herald.base + '/channels/new');
    // The kind's advice follows the choice (the script).
    assert.ok(await page.locator('[data-advice-for="webhook"]').isVisible());
    await page.selectOption('#kind', 'dingtalk');
    const advice = page.locator('[data-advice-for="dingtalk"]');
    assert.ok(await advice.isVisible());
    assert.match(await advice.innerText(), /SEC/);
    assert.ok(!(await page.locator('[data-advice-for="webhook"]').isVisible()));
    // A URL without its access_token is refused next to the field.
    await page.fill('#name', 'ops-dingtalk');
    await page.fill('#url', `${robot}/robot/send`);
    await page.fill('#secret', 'SECwrongwrongwrong');
    await page.click('#save-channel');
    await page.waitForSelector('.field-error');
    assert.match(await page.locator('.field-error').first().innerText(), /access_token/);
    assert.ok(!(await page.content()).includes('SECwrongwrongwrong'), 'the secret is not sent back');
    await shoot(page, 'channel-new');
    await page.fill('#url', `${robot}/robot/send?access_token=${TOKEN}`);
    await page.fill('#secret', 'SECwrongwrongwrong');
    await page.click('#save-channel');
    await page.waitForURL(/\/channels\/[^/]+\?done=done_channel_created$/);
    const channelUrl = page.url().split('?')[0];
    assert.match(await page.locator('#channel-status').innerText(), /Not tested/);
    const html = await page.content();
    assert.ok(!html.includes(TOKEN), 'the token is masked');
    assert.ok(!html.includes('SECwrongwrongwrong'), 'the secret is write-only');
    // The wrong secret: DingTalk's 310000 and the hint about the signature.
    await page.click('#test-channel');
    await page.waitForSelector('#test-report.bad');
    assert.equal(page.url().split('?')[0], channelUrl, 'tested in the background, on the same page');
    const report = await page.locator('#test-report').innerText();
    assert.match(report, /310000/, report);
    assert.match(report, /200/, report);
    assert.match(report, /configuration/, report);
    assert.match(await page.locator('#test-body').innerText(), /sign not match/);
    assert.match(await page.locator('#test-hint').innerText(), /signature/i);
    assert.match(await page.locator('#channel-status').innerText(), /Failing/);
    await shoot(page, 'channel-test-failed');
    // The right secret; the URL left empty keeps the stored one.
    await page.fill('#secret', SECRET);
    await page.click('#save-channel');
    await page.waitForURL(/done=done_saved/);
    await page.click('#test-channel');
    await page.waitForSelector('#test-report.ok');
    assert.match(await page.locator('#test-report').innerText(), /the channel works/);
    assert.match(await page.locator('#channel-status').innerText(), /Ready/);
    const got = await until(async () => {
        const list = await (await fetch(robot + '/_received')).json();
        return list.find(x => x.accepted);
    }, 'the robot accepted the test notification');
    assert.match(JSON.stringify(got.body), /ops-dingtalk/);
    await shoot(page, 'channel-test-ok');
    await page.goto(herald.base + '/channels');
    assert.match(await page.locator('#channels').innerText(), /ops-dingtalk[\s\S]*DingTalk[\s\S]*Ready/);
    assert.ok(!(await page.content()).includes(TOKEN));
    await shoot(page, 'channels');
    // A rule names it: deleting is refused with the service's reason.
    const rule = await api('POST', '/api/v1/rules', {
        name: 'to-dingtalk', match: { types: ['backup.*'] },
        methods: [{ channel: 'email', to: ['ops@example.com'] }, { channel: 'ops-dingtalk' }],
    });
    assert.equal(rule.status, 201, JSON.stringify(rule.json));
    await page.goto(channelUrl);
    await page.click('#delete-channel');
    await page.click('#confirm-delete');
    await page.waitForSelector('#delete-refused');
    assert.match(await page.locator('#delete-refused').innerText(), /to-dingtalk/);
    // The rule form shows the channel ticked; untick it and save: the rule sends by email only.
    const channelId = channelUrl.split('/').pop();
    await page.goto(`${herald.base}/rules/${rule.json.id}`);
    const box = page.locator(`#rule-channels input[value="${channelId}"]`);
    assert.ok(await box.isChecked());
    await shoot(page, 'rule-with-channel');
    await box.uncheck();
    await page.click('#save-rule');
    await page.waitForURL(/done=done_saved/);
    const saved = await api('GET', `/api/v1/rules/${rule.json.id}`);
    assert.deepEqual(saved.json.methods.map(m => m.channel), ['email'], JSON.stringify(saved.json));
    // In 简体中文: the nav, the page, the kind's advice and the test's hint.
    await page.goto(channelUrl);
    await page.click('#lang-switch');
    await page.waitForURL(channelUrl);
    assert.equal(await page.getAttribute('html', 'lang'), 'zh-CN');
    assert.match(await page.locator('nav').innerText(), /通知通道/);
    assert.match(await page.locator('#test-h').innerText(), /测试通道/);
    assert.match(await page.locator('#channel-status').innerText(), /正常/);
    assert.match(await page.locator('[data-advice-for="dingtalk"]').innerText(), /加签/);
    await page.fill('#secret', 'SECwrongwrongwrong');
    await page.click('#save-channel');
    await page.waitForURL(/done=done_saved/);
    await page.click('#test-channel');
    await page.waitForSelector('#test-report.bad');
    assert.match(await page.locator('#test-report').innerText(), /测试通知失败于/);
    assert.match(await page.locator('#test-hint').innerText(), /加签/);
    await shoot(page, 'channel-test-failed-zh');
    await page.goto(herald.base + '/channels/new');
    assert.match(await page.locator('h1').innerText(), /添加通道/);
    await shoot(page, 'channel-new-zh');
    // Deleted (no rule names it now); back to English for the tests after this one.
    await page.goto(channelUrl + '/delete');
    await page.click('#confirm-delete');
    await page.waitForURL(/\/channels\?done=done_deleted/);
    assert.doesNotMatch(await page.locator('main').innerText(), /ops-dingtalk/);
    await page.click('#lang-switch');
    await page.waitForURL(/\/channels/);
    assert.equal(await page.getAttribute('html', 'lang'), 'en');
});

test('switching to 简体中文 translates the pages, and the choice is remembered', async () => {
    await page.goto(herald.base + '/');
    await page.click('#lang-switch');
    await page.waitForURL(herald.base + '/');
    assert.equal(await page.getAttribute('html', 'lang'), 'zh-CN');
    assert.match(await page.locator('h1').innerText(), /概览/);
    assert.match(await page.locator('nav').innerText(), /SMTP 服务/);
    await shoot(page, 'overview-zh');
    await page.goto(qqAccountUrl);
    assert.match(await page.locator('#account-status').innerText(), /正常/);
    assert.match(await page.locator('#test-h').innerText(), /发送测试邮件/);
    await shoot(page, 'account-zh');
    await page.goto(herald.base + '/messages');
    assert.match(await page.locator('h1').innerText(), /投递日志/);
    await shoot(page, 'messages-zh');
    await page.goto(herald.base + '/rules');
    assert.match(await page.locator('h1').innerText(), /通知规则/);
    // A failed test email explains itself in Chinese too.
    await page.goto(qqAccountUrl);
    await page.fill('#secret', 'wrong-again');
    await page.click('#save-account');
    await page.waitForURL(/done=done_saved/);
    await page.fill('#to', 'someone@example.com');
    await page.click('#send-test');
    await page.waitForSelector('#test-report');
    assert.match(await page.locator('#test-report').innerText(), /测试邮件失败于/);
    assert.match(await page.locator('#test-hint').innerText(), /授权码/);
    await shoot(page, 'account-test-failed-zh');
    // Remembered on the user: a new browser signing in gets Chinese.
    const fresh = await browser.newContext({ locale: 'en-US' });
    const p = await fresh.newPage();
    await p.goto(herald.base + '/signin');
    await p.fill('#username', 'admin');
    await p.fill('#password', ADMIN_PASSWORD);
    await p.click('button[type=submit]');
    await p.waitForURL(herald.base + '/');
    assert.match(await p.locator('h1').innerText(), /概览/);
    await fresh.close();
});

test('the DKIM page and the proxy section in 简体中文: a different key is explained in Chinese', async () => {
    await page.goto(herald.base + '/dkim');
    assert.equal(await page.getAttribute('html', 'lang'), 'zh-CN');
    const key = (await api('GET', '/api/v1/dkim')).json[0];
    assert.match(await page.locator(`#key-${key.id} [data-dkim-status]`).innerText(), /已发布/);
    publish({ [key.dns_name]: ['v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAother'] });
    await page.locator(`#key-${key.id} [data-check]`).click();
    await until(async () => /密钥不一致/.test(await page.locator(`#key-${key.id} [data-dkim-status]`).innerText()),
        'the check says mismatch');
    assert.match(await page.locator(`#key-${key.id} [data-dkim-hint]`).innerText(), /另一个公钥/);
    await shoot(page, 'dkim-zh');
    await page.goto(herald.base + `/dkim/${key.id}/delete`);
    assert.match(await page.locator('h1').innerText(), /删除密钥/);
    assert.match(await page.locator('main').innerText(), /不带签名/);
    await shoot(page, 'dkim-delete-zh');
    await page.click('#confirm-delete');
    await page.waitForURL(/\/dkim\?done=done_deleted/);
    assert.ok(await page.locator('#no-dkim').isVisible());
    assert.equal((await api('GET', '/api/v1/dkim')).json.length, 0);
    await page.goto(qqAccountUrl);
    await page.click('#proxy-section summary');
    assert.match(await page.locator('#proxy-summary').innerText(), /平台默认/);
    assert.match(await page.locator('label[for=pin_sha256]').innerText(), /固定证书/);
    await shoot(page, 'account-proxy-zh');
});

test('sign out, and sign-in attempts are rate-limited', async () => {
    await page.click('text=退出登录');
    await page.waitForURL(/\/signin/);
    const r = await page.goto(herald.base + '/accounts');
    assert.match(page.url(), /\/signin\?next=/, String(r.status()));
    for (let i = 0; i < 5; i++) {
        await page.fill('#username', 'admin');
        await page.fill('#password', 'wrong password ' + i);
        await page.click('button[type=submit]');
        await page.waitForSelector('#signin-error');
    }
    await page.fill('#username', 'admin');
    await page.fill('#password', ADMIN_PASSWORD);
    await page.click('button[type=submit]');
    await page.waitForSelector('#signin-error');
    assert.match(await page.locator('#signin-error').innerText(), /15/);
    await shoot(page, 'signin-limited');
});

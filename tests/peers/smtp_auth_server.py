#!/usr/bin/env python3
"""A real RFC 5321 SMTP server for Herald's tests, built on aiosmtpd.

Binds 127.0.0.1 on a port chosen by the OS and prints ``READY <port>`` on
stdout once it listens. Every accepted message is written atomically to
``<maildir>/<n>.json`` (n = 1, 2, ...; continues after the highest number
already there) as::

    {"mail_from": str, "rcpt_tos": [str], "data": str, "auth_login": str|null}

``data`` is the message content exactly as aiosmtpd hands it over: the bytes
after the DATA command with dot-stuffing removed and the final ``.`` line
dropped, line endings left as the client sent them (CRLF for any conforming
client), including the CRLF that ends the last line; decoded as UTF-8 with
errors='replace'.

Modes: ``plain`` (no TLS), ``starttls`` (STARTTLS offered), ``tls`` (implicit
TLS / SMTPS from the first byte). ``--user``/``--password`` enable AUTH PLAIN
and LOGIN checked by a real authenticator; without them no AUTH is advertised
and the AUTH command answers 502. Wrong credentials get aiosmtpd's own
``535 5.7.8 Authentication credentials invalid``.

Logs go to stderr only; SIGTERM/SIGINT stop it cleanly (exit 0).
"""

import argparse
import asyncio
import hmac
import json
import logging
import os
import re
import signal
import ssl
import sys
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

log = logging.getLogger("smtp_auth_server")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=("plain", "starttls", "tls"), default="plain")
    p.add_argument("--cert", help="PEM certificate (starttls/tls)")
    p.add_argument("--key", help="PEM private key (starttls/tls)")
    p.add_argument("--user", help="accepted AUTH username (enables AUTH PLAIN/LOGIN)")
    p.add_argument("--password", help="accepted AUTH password")
    p.add_argument("--require-tls", action="store_true",
                   help="offer/accept AUTH only once TLS is active (aiosmtpd auth_require_tls)")
    p.add_argument("--auth-required", action="store_true",
                   help="refuse MAIL FROM with 530 until the client authenticated")
    p.add_argument("--size", type=int, default=33554432,
                   help="SIZE limit advertised and enforced (bytes, 0 = none)")
    p.add_argument("--maildir", required=True, help="directory for <n>.json messages")
    p.add_argument("--no-smtputf8", action="store_true",
                   help="do not offer SMTPUTF8: non-ASCII command lines get aiosmtpd's "
                        "'500 Error: strict ASCII mode'")
    p.add_argument("--wire", help="append every line the client sends, as received, to this file")
    p.add_argument("--verbose", action="store_true", help="aiosmtpd's INFO logs to stderr")
    p.add_argument("--port", type=int, default=0,
                   help="port to bind on 127.0.0.1 (0: one the OS chooses)")
    a = p.parse_args(argv)
    if a.mode != "plain" and not (a.cert and a.key):
        p.error("--mode %s needs --cert and --key" % a.mode)
    if (a.user is None) != (a.password is None):
        p.error("--user and --password go together")
    if a.auth_required and a.user is None:
        p.error("--auth-required needs --user/--password")
    return a


class Authenticator:
    """aiosmtpd authenticator accepting exactly one login/password pair."""

    def __init__(self, user, password):
        self.user = user.encode("utf-8")
        self.password = password.encode("utf-8")

    def __call__(self, server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok_user = hmac.compare_digest(auth_data.login, self.user)
        ok_pass = hmac.compare_digest(auth_data.password, self.password)
        if ok_user and ok_pass:
            log.info("AUTH %s ok for %r", mechanism, self.user.decode())
            return AuthResult(success=True, auth_data=auth_data)
        log.info("AUTH %s refused for %r", mechanism,
                 auth_data.login.decode("utf-8", "replace"))
        return AuthResult(success=False, handled=False)


class PeerSMTP(SMTP):
    """SMTP that can run with no AUTH at all (aiosmtpd always offers some)."""

    def __init__(self, handler, *, auth_enabled, **kw):
        self._peer_auth_enabled = auth_enabled
        super().__init__(handler, **kw)

    async def smtp_AUTH(self, arg):
        if not self._peer_auth_enabled:
            await self.push("502 5.5.1 Error: command 'AUTH' not implemented")
            return
        await super().smtp_AUTH(arg)


class PeerSMTPWire(PeerSMTP):
    """PeerSMTP that appends each line the client sends to a file, byte for byte."""

    def __init__(self, handler, *, wire, **kw):
        self._peer_wire = wire
        super().__init__(handler, **kw)

    def _cb_client_connected(self, reader, writer):
        super()._cb_client_connected(reader, writer)
        readuntil = reader.readuntil
        path = self._peer_wire

        async def recording(*args, **kw):
            line = await readuntil(*args, **kw)
            with open(path, "ab") as f:
                f.write(line)
            return line

        reader.readuntil = recording


class Maildir:
    def __init__(self, path):
        self.path = path
        os.makedirs(path, exist_ok=True)
        highest = 0
        for name in os.listdir(path):
            m = re.fullmatch(r"(\d+)\.json", name)
            if m:
                highest = max(highest, int(m.group(1)))
        self.next = highest + 1

    def save(self, record):
        n = self.next
        self.next += 1
        final = os.path.join(self.path, "%d.json" % n)
        tmp = os.path.join(self.path, ".%d.json.tmp" % n)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False, separators=(",", ":"))
            f.write("\n")
        os.rename(tmp, final)
        return final


class Handler:
    def __init__(self, maildir, auth_enabled):
        # NB: no attribute of a handler may start with "auth_": aiosmtpd
        # treats such members as AUTH mechanism implementations.
        self.maildir = maildir
        self.offer_auth = auth_enabled

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # The 5-argument hook must record the hostname itself.
        session.host_name = hostname
        if not self.offer_auth:
            responses = [r for r in responses if not r.startswith("250-AUTH")]
        return responses

    async def handle_DATA(self, server, session, envelope):
        login = None
        if session.authenticated and isinstance(session.auth_data, LoginPassword):
            login = session.auth_data.login.decode("utf-8", "replace")
        content = envelope.content
        if isinstance(content, (bytes, bytearray)):
            content = bytes(content).decode("utf-8", errors="replace")
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "data": content,
            "auth_login": login,
        }
        path = self.maildir.save(record)
        log.info("accepted message from %r to %r -> %s",
                 envelope.mail_from, envelope.rcpt_tos, path)
        return "250 2.0.0 OK: message accepted"


def server_tls_context(cert, key):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


async def serve(a):
    loop = asyncio.get_running_loop()
    auth_enabled = a.user is not None
    handler = Handler(Maildir(a.maildir), auth_enabled)
    ctx = server_tls_context(a.cert, a.key) if a.mode != "plain" else None

    smtp_kw = dict(
        hostname="localhost",
        ident="Herald test peer (aiosmtpd)",
        data_size_limit=a.size or None,
        enable_SMTPUTF8=not a.no_smtputf8,
        decode_data=False,
        auth_required=a.auth_required,
        # With implicit TLS aiosmtpd does not know the socket is encrypted
        # (it only tracks STARTTLS), so "AUTH only after TLS" is satisfied by
        # construction there and must not be enforced by aiosmtpd.
        auth_require_tls=a.require_tls and a.mode != "tls",
        authenticator=Authenticator(a.user, a.password) if auth_enabled else None,
        tls_context=ctx if a.mode == "starttls" else None,
        loop=loop,
    )

    def factory():
        if a.wire:
            return PeerSMTPWire(handler, wire=a.wire, auth_enabled=auth_enabled, **smtp_kw)
        return PeerSMTP(handler, auth_enabled=auth_enabled, **smtp_kw)

    server = await loop.create_server(
        factory, "127.0.0.1", a.port, ssl=ctx if a.mode == "tls" else None)
    port = server.sockets[0].getsockname()[1]
    log.info("listening on 127.0.0.1:%d mode=%s auth=%s require_tls=%s",
             port, a.mode, auth_enabled, a.require_tls)

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    sys.stdout.write("READY %d\n" % port)
    sys.stdout.flush()

    await stop.wait()
    log.info("stopping")
    server.close()
    await server.wait_closed()


def main(argv=None):
    a = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    mail_log = logging.getLogger("mail.log")
    mail_log.setLevel(logging.INFO if a.verbose else logging.WARNING)
    # aiosmtpd itself still fills the deprecated Session.login_data after a
    # successful AUTH and warns about its own use each time: drop that line.
    mail_log.addFilter(lambda rec: "login_data is deprecated" not in rec.getMessage())
    # --auth-required without --require-tls is deliberate here (loopback tests).
    mail_log.addFilter(lambda rec: "auth_require_tls == False" not in rec.getMessage())
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    asyncio.run(serve(a))
    return 0


if __name__ == "__main__":
    sys.exit(main())

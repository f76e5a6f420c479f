#!/usr/bin/env python3
"""Two peers for Herald's DKIM tests, both on 127.0.0.1, both reading the
same records file (JSON: {"<name>": ["<TXT value>", ...]}, re-read on every
query, so a test can publish, change and remove records while they run):

``dns``  a DNS server (dnslib) answering TXT queries from the records file
         (NXDOMAIN for a name that is not there), over UDP.
``smtp`` an SMTP server (aiosmtpd) that verifies every message's DKIM
         signatures with dkimpy, looking keys up in the records file, and
         writes ``<maildir>/<n>.json`` as ``{"mail_from", "rcpt_tos", "data",
         "dkim": {"ok": bool, "domain": str|null, "selector": str|null,
         "error": str|null}}``.

Each prints ``READY <port>`` on stdout once it listens; SIGTERM stops it.
"""

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import threading

log = logging.getLogger("dkim_peers")


def load_records(path):
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    return {k.rstrip(".").lower(): v for k, v in data.items()}


def run_dns(a):
    from dnslib import QTYPE, RCODE, RR, TXT
    from dnslib.server import BaseResolver, DNSServer

    class Resolver(BaseResolver):
        def resolve(self, request, handler):
            reply = request.reply()
            name = str(request.q.qname).rstrip(".").lower()
            records = load_records(a.records)
            if name not in records:
                reply.header.rcode = RCODE.NXDOMAIN
                return reply
            if request.q.qtype == QTYPE.TXT:
                for value in records[name]:
                    raw = value.encode("utf-8")
                    chunks = [raw[i:i + 255] for i in range(0, len(raw), 255)] or [b""]
                    reply.add_answer(RR(request.q.qname, QTYPE.TXT, ttl=0, rdata=TXT(chunks)))
            return reply

    class Quiet:
        def __getattr__(self, name):
            return lambda *args, **kw: None

    server = DNSServer(Resolver(), port=0, address="127.0.0.1", logger=Quiet())
    port = server.server.server_address[1]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start_thread()
    sys.stdout.write("READY %d\n" % port)
    sys.stdout.flush()
    stop.wait()
    server.stop()


class Maildir:
    def __init__(self, path):
        self.path = path
        self.next = 1

    def save(self, record):
        n = self.next
        self.next += 1
        tmp = os.path.join(self.path, ".%d.json.tmp" % n)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False)
        os.rename(tmp, os.path.join(self.path, "%d.json" % n))


class Handler:
    def __init__(self, maildir, records):
        self.maildir = maildir
        self.records = records

    def dnsfunc(self, name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode("ascii")
        values = load_records(self.records).get(name.rstrip(".").lower(), [])
        return values[0].encode("utf-8") if values else None

    async def handle_DATA(self, server, session, envelope):
        import dkim

        raw = bytes(envelope.original_content or envelope.content)
        result = {"ok": False, "domain": None, "selector": None, "error": None}
        try:
            d = dkim.DKIM(raw, logger=log, minkey=1024)
            result["ok"] = bool(d.verify(dnsfunc=self.dnsfunc))
            result["domain"] = d.domain.decode() if d.domain else None
            result["selector"] = d.selector.decode() if d.selector else None
        except Exception as e:  # noqa: BLE001 - the test reads the reason
            result["error"] = "%s: %s" % (type(e).__name__, e)
        if not result["ok"] and result["error"] is None:
            result["error"] = "signature did not verify"
        self.maildir.save({
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "data": raw.decode("utf-8", errors="replace"),
            "dkim": result,
        })
        return "250 2.0.0 OK: message accepted"


async def serve_smtp(a):
    from aiosmtpd.smtp import SMTP

    loop = asyncio.get_running_loop()
    handler = Handler(Maildir(a.maildir), a.records)

    def factory():
        return SMTP(handler, hostname="localhost", decode_data=False, enable_SMTPUTF8=True,
                    auth_require_tls=False, loop=loop)

    server = await loop.create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sys.stdout.write("READY %d\n" % port)
    sys.stdout.flush()
    await stop.wait()
    server.close()
    await server.wait_closed()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("role", choices=("dns", "smtp"))
    p.add_argument("--records", required=True, help="JSON file of TXT records by name")
    p.add_argument("--maildir", help="where the smtp role writes <n>.json")
    a = p.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    if a.role == "dns":
        run_dns(a)
    else:
        if not a.maildir:
            p.error("smtp needs --maildir")
        asyncio.run(serve_smtp(a))
    return 0


if __name__ == "__main__":
    sys.exit(main())

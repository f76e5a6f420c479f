#!/usr/bin/env node
// A receiver of one kind of Herald channel, on 127.0.0.1, for the tests.
// It checks each request the way the real service documents it and answers
// with that service's own bodies, success or error:
//
//   webhook   Standard Webhooks, verified by the maintained `standardwebhooks`
//             library (new Webhook(secret).verify(body, headers)); 401 when
//             the signature does not verify.
//   dingtalk  ?access_token=<token>&timestamp=<ms>&sign=<base64 HMAC-SHA256 of
//             "timestamp\nsecret" keyed by the secret>; timestamp within an
//             hour; a custom keyword must be in the content. Errors:
//             300001 token, 310000 sign not match / keywords not in content.
//   feishu    body {timestamp (s), sign = base64 HMAC-SHA256 keyed by
//             "timestamp\nsecret" over empty data}; errors 19021, 19024.
//   wecom     ?key=<key>; errcode 93000 for another key.
//   slack     /services/T…/B…/<token>; 403 invalid_token for another token.
//   teams     an Adaptive Card message; 202.
//
// Options: --kind K, --secret S (webhook whsec_…; dingtalk / feishu signing
// secret), --token T (the token the URL must carry), --keyword W,
// --script "503,503,200" or "429:3,200" (statuses to answer first, then
// normal; `:N` adds Retry-After: N). It prints "READY <port>" once listening.
// GET /_received answers every request seen so far:
//   [{at, path, headers, body, accepted, answer}].

const http = require("http");
const crypto = require("crypto");
const { Webhook } = require("standardwebhooks");

const args = {};
for (let i = 2; i < process.argv.length; i += 2) {
  args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
}
const kind = args.kind || "webhook";
const secret = args.secret || "";
const token = args.token || "";
const keyword = args.keyword || "";
const script = (args.script || "")
  .split(",")
  .filter((s) => s)
  .map((s) => {
    const [status, retryAfter] = s.split(":");
    return { status: Number(status), retryAfter };
  });
const received = [];

const hmac = (key, data) => crypto.createHmac("sha256", key).update(data).digest("base64");
const withinHour = (ms) => Math.abs(Date.now() - ms) < 3600 * 1000;

// What the service answers to a request that reached it: [status, body, accepted].
function judge(url, headers, raw) {
  let body = null;
  try {
    body = JSON.parse(raw);
  } catch (_) {}
  const q = url.searchParams;
  switch (kind) {
    case "webhook": {
      try {
        new Webhook(secret).verify(raw, headers);
      } catch (e) {
        return [401, "invalid signature: " + e.message, false];
      }
      return [200, JSON.stringify({ received: true }), true];
    }
    case "dingtalk": {
      if (token && q.get("access_token") !== token) {
        return [200, JSON.stringify({ errcode: 300001, errmsg: "token is not exist" }), false];
      }
      if (secret) {
        const ts = Number(q.get("timestamp"));
        if (!withinHour(ts) || q.get("sign") !== hmac(secret, `${ts}\n${secret}`)) {
          return [
            200,
            JSON.stringify({
              errcode: 310000,
              errmsg: "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]",
            }),
            false,
          ];
        }
      }
      const content = JSON.stringify(body && (body.markdown || body.text || body));
      if (keyword && !content.includes(keyword)) {
        return [
          200,
          JSON.stringify({
            errcode: 310000,
            errmsg: "keywords not in content, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]",
          }),
          false,
        ];
      }
      if (!body || !["text", "markdown", "link", "actionCard", "feedCard"].includes(body.msgtype)) {
        return [200, JSON.stringify({ errcode: 40035, errmsg: "缺少参数 json" }), false];
      }
      return [200, JSON.stringify({ errcode: 0, errmsg: "ok" }), true];
    }
    case "feishu": {
      if (token && !url.pathname.endsWith("/hook/" + token)) {
        return [200, JSON.stringify({ code: 19001, data: {}, msg: "param invalid: incoming webhook access token invalid" }), false];
      }
      if (secret) {
        const ts = Number(body && body.timestamp);
        if (!withinHour(ts * 1000) || !body || body.sign !== hmac(`${ts}\n${secret}`, "")) {
          return [
            200,
            JSON.stringify({
              code: 19021,
              data: {},
              msg: "sign match fail or timestamp is not within one hour from current time",
            }),
            false,
          ];
        }
      }
      if (keyword && !raw.includes(keyword)) {
        return [200, JSON.stringify({ code: 19024, data: {}, msg: "Key Words Not Found" }), false];
      }
      return [200, JSON.stringify({ StatusCode: 0, StatusMessage: "success", code: 0, data: {}, msg: "success" }), true];
    }
    case "wecom": {
      if (q.get("key") !== token) {
        return [
          200,
          JSON.stringify({
            errcode: 93000,
            errmsg: "invalid webhook url, hint: [1700000000_1_abc], from ip: 127.0.0.1, more info at https://open.work.weixin.qq.com/devtool/query?e=93000",
          }),
          false,
        ];
      }
      return [200, JSON.stringify({ errcode: 0, errmsg: "ok" }), true];
    }
    case "slack": {
      if (token && !url.pathname.endsWith("/" + token)) {
        return [403, "invalid_token", false];
      }
      if (args.archived) {
        return [410, "channel_is_archived", false];
      }
      if (!body || typeof body.text !== "string") {
        return [400, "invalid_payload", false];
      }
      return [200, "ok", true];
    }
    case "teams": {
      const card = body && body.attachments && body.attachments[0];
      if (!card || card.contentType !== "application/vnd.microsoft.card.adaptive") {
        return [
          400,
          JSON.stringify({ error: { code: "InvalidRequestContent", message: "The request content is not valid." } }),
          false,
        ];
      }
      return [202, "", true];
    }
  }
  return [500, "unknown kind", false];
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const url = new URL(req.url, "http://127.0.0.1");
    if (req.method === "GET" && url.pathname === "/_received") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(received));
      return;
    }
    const raw = Buffer.concat(chunks).toString("utf8");
    const entry = { at: Date.now(), path: req.url, headers: req.headers, body: raw, accepted: false };
    received.push(entry);
    const scripted = script.shift();
    if (scripted && scripted.status !== 200) {
      const headers = { "content-type": "text/plain" };
      if (scripted.retryAfter) headers["retry-after"] = scripted.retryAfter;
      entry.answer = scripted.status;
      res.writeHead(scripted.status, headers);
      res.end(scripted.status === 429 ? "rate_limited" : "service unavailable");
      return;
    }
    const [status, body, accepted] = judge(url, req.headers, raw);
    entry.accepted = accepted;
    entry.answer = status;
    res.writeHead(status, { "content-type": body.startsWith("{") ? "application/json" : "text/plain" });
    res.end(body);
  });
});

server.listen(Number(args.port || 0), "127.0.0.1", () => {
  process.stdout.write(`READY ${server.address().port}\n`);
});

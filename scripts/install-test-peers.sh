#!/usr/bin/env bash
# Installs the real test peers Herald's tests talk to on loopback
# (see tests/peers/README.md):
#   - Debian: postfix (only for smtp-sink / smtp-source; its daemon is stopped
#     and disabled so port 25 stays free), swaks, openssl; chromium (the
#     console's browser tests, driven by playwright-core) and a CJK font
#     (fonts-wqy-microhei) so its 简体中文 screenshots show characters
#   - PyPI:   aiosmtpd, into the python3 on PATH (tests/peers/smtp_auth_server.py);
#             pproxy, an HTTP CONNECT and SOCKS5 proxy (tests/api/proxy.rs)
#             dkimpy, PyNaCl, dnslib (tests/peers/dkim_peers.py)
#   - npm:    tests/peers/package-lock.json (smtp-server, oauth2-mock-server,
#             standardwebhooks for tests/peers/robot_receiver.js,
#             playwright-core: never `npx playwright install`, it drives Debian's chromium)
# Idempotent, quiet unless something fails, meant to run as root (CI, dev
# machines). Prints one summary line of versions at the end.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
peers_dir="$(cd "$here/../tests/peers" && pwd)"

log_file="$(mktemp -t install-test-peers.XXXXXX)"
trap 'rm -f "$log_file"' EXIT

die() {
    echo "install-test-peers: $*" >&2
    exit 1
}

# run_quiet DESCRIPTION CMD...: runs CMD with its output captured, shows the
# output only when CMD fails.
run_quiet() {
    local what="$1"
    shift
    if ! "$@" >"$log_file" 2>&1; then
        echo "install-test-peers: $what failed: $*" >&2
        cat "$log_file" >&2
        exit 1
    fi
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        die "needs root for: $*"
    fi
}

# ------------------------------------------------------------------ Debian
deb_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

missing=()
for pkg in postfix swaks openssl chromium fonts-wqy-microhei; do
    deb_installed "$pkg" || missing+=("$pkg")
done

if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    if printf '%s\n' "${missing[@]}" | grep -qx postfix; then
        # answer postfix's questions up front: a local-only "Internet Site"
        run_quiet "debconf preseed" as_root sh -c \
            "printf '%s\n' 'postfix postfix/main_mailer_type select Internet Site' \
                           'postfix postfix/mailname string localhost' | debconf-set-selections"
    fi
    run_quiet "apt-get update" as_root apt-get update -q
    run_quiet "apt-get install ${missing[*]}" as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Only smtp-sink/smtp-source are wanted: make sure no postfix daemon holds port 25.
as_root postfix stop >/dev/null 2>&1 || true
if command -v systemctl >/dev/null 2>&1; then
    as_root systemctl disable postfix >/dev/null 2>&1 || true
    if [ -d /run/systemd/system ]; then
        as_root systemctl stop postfix >/dev/null 2>&1 || true
    fi
fi
if command -v update-rc.d >/dev/null 2>&1; then
    as_root update-rc.d postfix disable >/dev/null 2>&1 || true
fi

for tool in smtp-sink smtp-source swaks openssl chromium; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || die "$tool not found after install"
done

# ------------------------------------------------------------------ PyPI
command -v python3 >/dev/null 2>&1 || die "python3 not found on PATH"
aiosmtpd_ok() {
    python3 -c 'from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword' >/dev/null 2>&1
}
if ! aiosmtpd_ok; then
    if ! python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        'aiosmtpd>=1.4,<2' >"$log_file" 2>&1; then
        if grep -q externally-managed-environment "$log_file"; then
            # Debian's own python3 refuses pip: take Debian's package instead
            run_quiet "apt-get install python3-aiosmtpd" as_root env DEBIAN_FRONTEND=noninteractive \
                apt-get install -y -q --no-install-recommends python3-aiosmtpd
        else
            echo "install-test-peers: pip install aiosmtpd failed" >&2
            cat "$log_file" >&2
            exit 1
        fi
    fi
    aiosmtpd_ok || die "aiosmtpd still not importable by $(command -v python3)"
fi

# pproxy: the real HTTP CONNECT / SOCKS5 proxy of tests/api/proxy.rs.
pproxy_ok() {
    command -v pproxy >/dev/null 2>&1 && python3 -c 'import pproxy' >/dev/null 2>&1
}
if ! pproxy_ok; then
    if ! python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        'pproxy>=2.7,<3' >"$log_file" 2>&1; then
        echo "install-test-peers: pip install pproxy failed" >&2
        cat "$log_file" >&2
        exit 1
    fi
    pproxy_ok || die "pproxy still not on PATH after pip install (python3 is $(command -v python3))"
fi

# DKIM tests (tests/peers/dkim_peers.py): dkimpy verifies signatures (PyNaCl
# for Ed25519), dnslib serves the TXT records on loopback.
dkim_peers_ok() {
    python3 -c 'import dkim, nacl.signing, dnslib.server' >/dev/null 2>&1
}
if ! dkim_peers_ok; then
    if ! python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        'dkimpy>=1.1,<2' 'pynacl>=1.5' 'dnslib>=0.9,<1' >"$log_file" 2>&1; then
        if grep -q externally-managed-environment "$log_file"; then
            run_quiet "apt-get install python3-dkim python3-nacl python3-dnslib" as_root env \
                DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
                python3-dkim python3-nacl python3-dnslib
        else
            echo "install-test-peers: pip install dkimpy pynacl dnslib failed" >&2
            cat "$log_file" >&2
            exit 1
        fi
    fi
    dkim_peers_ok || die "dkimpy / PyNaCl / dnslib still not importable by $(command -v python3)"
fi

# ------------------------------------------------------------------ npm
command -v node >/dev/null 2>&1 || die "node not found on PATH (Node >= 20 is needed)"
command -v npm >/dev/null 2>&1 || die "npm not found on PATH"
npm_flags=(--no-audit --no-fund --loglevel=error)
if [ -f "$peers_dir/package-lock.json" ]; then
    run_quiet "npm ci" npm --prefix "$peers_dir" ci "${npm_flags[@]}"
else
    run_quiet "npm install" npm --prefix "$peers_dir" install "${npm_flags[@]}"
fi

# ------------------------------------------------------------------ summary
pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo '?'; }
npmver() {
    node -e 'process.stdout.write(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).version)' \
        "$peers_dir/node_modules/$1/package.json" 2>/dev/null || echo '?'
}
aiosmtpd_ver="$(python3 -c 'import aiosmtpd; print(aiosmtpd.__version__)' 2>/dev/null || echo '?')"
pproxy_ver="$(python3 -m pip show pproxy 2>/dev/null | sed -n 's/^Version: //p')"
echo "test peers ready: postfix $(pkgver postfix), swaks $(pkgver swaks), openssl $(pkgver openssl)," \
    "python $(python3 -c 'import platform; print(platform.python_version())') aiosmtpd $aiosmtpd_ver" \
    "pproxy ${pproxy_ver:-?}," \
    "node $(node --version) smtp-server $(npmver smtp-server) oauth2-mock-server $(npmver oauth2-mock-server)" \
    "standardwebhooks $(npmver standardwebhooks)," \
    "chromium $(pkgver chromium) playwright-core $(npmver playwright-core)"

#!/usr/bin/env bash
# Idempotent system set-up for Driftline on a Debian machine: makes sure Java (>= 17),
# Maven, python3, kcat, xxd, openssl, Prometheus (prometheus, promtool), Alertmanager
# (prometheus-alertmanager, amtool) and Chromium are there,
# installing Debian's packages only when something is missing. A fast no-op when
# everything is present.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: infra/bootstrap.sh [--quiet] [--help]

Checks for java (>= 17), mvn, python3, kcat, xxd, openssl, prometheus, promtool,
prometheus-alertmanager, amtool and chromium; if any is missing, runs `apt-get update`
once and `apt-get install -y openjdk-17-jdk-headless maven python3 kcat xxd openssl
prometheus prometheus-alertmanager chromium` (only the missing ones), as root or through
sudo. The tests use prometheus and promtool (a real scrape, config and rule checks),
prometheus-alertmanager and amtool (incidents routed to a real Alertmanager, its config
checked; the package's service is not started), chromium (the status page, headless), openssl
(certificates of the secured broker, infra/kafka/certs.sh) and xxd (a command of
docs/wire-format.md, run by tests/integration/test_docs.py). Prints (to stderr)
what it found and what it did; with --quiet, only what it did.
EOF
}

quiet=0
case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  -q | --quiet) quiet=1 ;;
  "") ;;
  *) usage >&2; exit 2 ;;
esac

log() { printf 'bootstrap: %s\n' "$*" >&2; }
info() { ((quiet)) || log "$@"; }

# Major version of the `java` on PATH (8 for "1.8.0_x", 17 for "17.0.15"), 0 if none.
java_major() {
  command -v java >/dev/null 2>&1 || { echo 0; return; }
  local v
  v=$(java -version 2>&1 | sed -n 's/.* version "\([^"]*\)".*/\1/p' | head -n 1)
  v=${v#1.}
  v=${v%%[.+_-]*}
  [[ $v =~ ^[0-9]+$ ]] && echo "$v" || echo 0
}

missing=()
jm=$(java_major)
if ((jm >= 17)); then
  info "java $jm: ok"
else
  log "java >= 17 missing (found: ${jm/#0/none})"
  missing+=(openjdk-17-jdk-headless)
fi
if command -v mvn >/dev/null 2>&1; then
  info "mvn: ok"
else
  log "mvn missing"
  missing+=(maven)
fi
if command -v python3 >/dev/null 2>&1; then
  info "python3: ok"
else
  log "python3 missing"
  missing+=(python3)
fi
if command -v kcat >/dev/null 2>&1; then
  info "kcat: ok"
else
  log "kcat missing"
  missing+=(kcat)
fi
if command -v xxd >/dev/null 2>&1; then
  info "xxd: ok"
else
  log "xxd missing"
  missing+=(xxd)
fi
if command -v openssl >/dev/null 2>&1; then
  info "openssl: ok"
else
  log "openssl missing"
  missing+=(openssl)
fi
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  info "prometheus, promtool: ok"
else
  log "prometheus or promtool missing"
  missing+=(prometheus)
fi
if command -v prometheus-alertmanager >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1; then
  info "prometheus-alertmanager, amtool: ok"
else
  log "prometheus-alertmanager or amtool missing"
  missing+=(prometheus-alertmanager)
fi
if command -v chromium >/dev/null 2>&1; then
  info "chromium: ok"
else
  log "chromium missing"
  missing+=(chromium)
fi

if ((${#missing[@]} == 0)); then
  info "nothing to do"
  exit 0
fi

if ((EUID == 0)); then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  log "need root (or sudo) to install: ${missing[*]}"
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
log "running: ${as_root[*]:+${as_root[*]} }apt-get update"
"${as_root[@]}" apt-get update -q >&2
log "running: ${as_root[*]:+${as_root[*]} }apt-get install -y ${missing[*]}"
"${as_root[@]}" apt-get install -y -q "${missing[@]}" >&2

jm=$(java_major)
if ((jm < 17)); then
  log "java on PATH is still ${jm/#0/missing} after the install: select Java 17 with update-alternatives --config java"
  exit 1
fi
for c in mvn python3 kcat openssl prometheus promtool prometheus-alertmanager amtool chromium; do
  command -v "$c" >/dev/null 2>&1 || { log "$c is still not on PATH after the install"; exit 1; }
done
log "installed: ${missing[*]}"

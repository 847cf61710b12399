#!/usr/bin/env bash
# Idempotent system set-up for Driftline on a Debian machine: installs, from Debian's
# packages, only what the chosen command needs and only what is missing. A fast no-op
# when everything is present.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: infra/bootstrap.sh [--for demo|test] [--quiet] [--help]

--for demo (the default; make setup, make demo): java (>= 17), mvn (fetches the Kafka
  jars) and python3: Debian packages openjdk-17-jdk-headless, maven, python3, python3-venv.
--for test (make unit, make test): the demo's, and what the tests run: kcat, xxd,
  openssl (the secured broker's certificates), prometheus and promtool (a real scrape,
  config and rule checks), prometheus-alertmanager and amtool (incidents routed to a
  real Alertmanager; the package's service is not started), chromium (the status page,
  headless) and PostgreSQL's server binaries (the SQL view's tests, infra/postgres/pg.sh):
  packages kcat, xxd, openssl, prometheus, prometheus-alertmanager, chromium, postgresql.

If something is missing, runs `apt-get update` once and `apt-get install -y` the missing
packages, as root or through sudo. apt's output goes to a log file
(${DRIFTLINE_BOOTSTRAP_LOG:-<repo>/.cache/bootstrap.log}); the terminal gets one line
per step and, if a step fails, the log's last lines and its path. Prints (to stderr)
what it found and what it did; with --quiet, only what it did.
EOF
}

quiet=0
target=demo
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    -q | --quiet) quiet=1 ;;
    --for) target=${2:-}; shift ;;
    --for=*) target=${1#*=} ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done
[[ $target == demo || $target == test ]] || { usage >&2; exit 2; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
logfile=${DRIFTLINE_BOOTSTRAP_LOG:-$repo/.cache/bootstrap.log}

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

have() { command -v "$1" >/dev/null 2>&1; }
have_venv() { python3 -c 'import ensurepip, venv' >/dev/null 2>&1; }
have_postgres() {
  local d
  d=$(bash "$repo/infra/postgres/pg.sh" bindir 2>/dev/null) && [[ -x $d/pg_ctl && -x $d/initdb ]]
}

missing=()
# need WHAT PACKAGE CHECK...: PACKAGE joins the install list unless CHECK succeeds.
need() {
  local what=$1 package=$2
  shift 2
  if "$@"; then
    info "$what: ok"
  else
    log "$what missing"
    missing+=("$package")
  fi
}

jm=$(java_major)
if ((jm >= 17)); then
  info "java $jm: ok"
else
  log "java >= 17 missing (found: ${jm/#0/none})"
  missing+=(openjdk-17-jdk-headless)
fi
need mvn maven have mvn
need python3 python3 have python3
need "python3 venv" python3-venv have_venv
if [[ $target == test ]]; then
  need kcat kcat have kcat
  need xxd xxd have xxd
  need openssl openssl have openssl
  need "prometheus, promtool" prometheus eval 'have prometheus && have promtool'
  need "prometheus-alertmanager, amtool" prometheus-alertmanager \
    eval 'have prometheus-alertmanager && have amtool'
  need chromium chromium have chromium
  need "postgresql (server binaries)" postgresql have_postgres
fi

if ((${#missing[@]} == 0)); then
  info "nothing to do (--for $target)"
  exit 0
fi

if ((EUID == 0)); then
  as_root=()
elif have sudo; then
  as_root=(sudo)
else
  log "need root (or sudo) to install: ${missing[*]}"
  exit 1
fi

mkdir -p "$(dirname "$logfile")"
: >"$logfile"
# step TITLE COMMAND...: one line on the terminal, the command's output in the log.
step() {
  local title=$1 start=$SECONDS
  shift
  printf 'bootstrap: %s ... ' "$title" >&2
  printf '\n### %s\n' "$*" >>"$logfile"
  if "$@" >>"$logfile" 2>&1; then
    printf 'ok (%ss)\n' "$((SECONDS - start))" >&2
  else
    printf 'FAILED\n' >&2
    tail -n 25 "$logfile" | sed 's/^/  | /' >&2
    log "the whole output is in $logfile"
    exit 1
  fi
}

export DEBIAN_FRONTEND=noninteractive
step "apt-get update" "${as_root[@]}" apt-get update
step "apt-get install ${missing[*]} (for $target)" \
  "${as_root[@]}" apt-get install -y "${missing[@]}"

jm=$(java_major)
if ((jm < 17)); then
  log "java on PATH is still ${jm/#0/missing} after the install: select Java 17 with update-alternatives --config java"
  exit 1
fi
checks=(mvn python3)
[[ $target == test ]] && checks+=(kcat xxd openssl prometheus promtool prometheus-alertmanager amtool chromium)
for c in "${checks[@]}"; do
  have "$c" || { log "$c is still not on PATH after the install"; exit 1; }
done
if [[ $target == test ]] && ! have_postgres; then
  log "PostgreSQL's binaries are still missing after the install"
  exit 1
fi
log "installed: ${missing[*]} (log: $logfile)"

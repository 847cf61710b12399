#!/usr/bin/env bash
# A throw-away PostgreSQL server for the tests, from the machine's PostgreSQL binaries,
# in a directory of its own (like infra/kafka/broker.sh for the broker).
set -euo pipefail

usage() {
  cat <<'EOF'
usage: infra/postgres/pg.sh up DIR | down DIR [--purge] | bindir | --help

up DIR    initdb DIR/data (superuser "driftline", trust authentication, 127.0.0.1
          only), start the server on a free port with its socket in DIR and print its
          SQLAlchemy URL, postgresql+psycopg://driftline@127.0.0.1:PORT/postgres, as
          the only line on stdout. fsync is off: a test server, not a store.
down DIR  stop the server of DIR (fast shutdown); --purge also removes DIR.
bindir    print the directory of the binaries used.

The binaries: $DRIFTLINE_PG_BINDIR, else the newest /usr/lib/postgresql/*/bin (where
Debian's postgresql package puts them), else pg_ctl on PATH. infra/bootstrap.sh --for
test installs them. As root the server runs as the user "postgres" (Debian's package
creates it; PostgreSQL refuses to run as root), so DIR is handed to that user.
EOF
}

die() { printf 'pg.sh: %s\n' "$*" >&2; exit 1; }

bindir() {
  if [[ -n ${DRIFTLINE_PG_BINDIR:-} ]]; then
    printf '%s\n' "$DRIFTLINE_PG_BINDIR"
    return
  fi
  local d
  d=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
  if [[ -n $d && -x $d/pg_ctl ]]; then
    printf '%s\n' "$d"
  elif command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v pg_ctl)"
  else
    die "no PostgreSQL binaries (pg_ctl, initdb): run infra/bootstrap.sh --for test (Debian package postgresql)"
  fi
}

# Runs a command as the server's user: ourselves, or "postgres" when we are root.
as_server() {
  if ((EUID == 0)); then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

up() {
  local dir=$1 bin port
  bin=$(bindir)
  [[ -x $bin/initdb && -x $bin/pg_ctl ]] || die "no initdb or pg_ctl in $bin"
  mkdir -p "$dir"
  if ((EUID == 0)); then
    getent passwd postgres >/dev/null || die "running as root needs the user postgres (Debian package postgresql creates it)"
    chown postgres "$dir"
    # the server's user must reach DIR through its parents (pytest's are 0700)
    local p=$dir
    while [[ $p != / ]]; do
      p=$(dirname "$p")
      chmod o+x "$p" 2>/dev/null || true
    done
  fi
  as_server "$bin/initdb" -D "$dir/data" -U driftline -A trust -E UTF8 --no-locale \
    >"$dir/initdb.log" 2>&1 || { tail -n 20 "$dir/initdb.log" >&2; die "initdb failed (log: $dir/initdb.log)"; }
  port=$(free_port)
  as_server "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c synchronous_commit=off" \
    start >/dev/null || { tail -n 20 "$dir/server.log" >&2; die "the server did not start (log: $dir/server.log)"; }
  printf '%s\n' "$port" >"$dir/port"
  printf 'postgresql+psycopg://driftline@127.0.0.1:%s/postgres\n' "$port"
}

down() {
  local dir=$1 purge=${2:-} bin
  bin=$(bindir)
  if [[ -f $dir/data/postmaster.pid ]]; then
    as_server "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
  fi
  if [[ $purge == --purge ]]; then
    rm -rf "$dir"
  fi
}

case "${1:-}" in
  up) [[ $# -eq 2 ]] || { usage >&2; exit 2; }; up "$2" ;;
  down) [[ $# -ge 2 ]] || { usage >&2; exit 2; }; down "$2" "${3:-}" ;;
  bindir) bindir ;;
  -h | --help) usage ;;
  *) usage >&2; exit 2 ;;
esac

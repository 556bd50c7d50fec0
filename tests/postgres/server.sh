#!/usr/bin/env bash
# A throw-away PostgreSQL server for corio::pg's tests, example and benchmark.
#
#   server.sh start DIR PORT   initdb into DIR/data, listen on a Unix socket in DIR only
#   server.sh stop DIR         stop it and remove DIR
#   server.sh check            exit 0 when the server's binaries are here, else say what is missing
#
# The server listens on no TCP port (listen_addresses=''), so it cannot collide with a
# cluster the postgresql package started; its socket, lock file and data live in DIR.
# Roles: postgres (superuser, trust over the socket) and corio_password, whose password
# is 'corio-secret' and is checked (scram-sha-256), so that a wrong password is refused.
# As root, the server runs as the user postgres (created, as a system user, if missing):
# PostgreSQL refuses to run as root.
set -euo pipefail

usage() { echo "usage: server.sh start DIR PORT | stop DIR | check" >&2; exit 2; }
[ $# -ge 1 ] || usage
cmd=$1
[ "$cmd" = check ] || [ $# -ge 2 ] || usage
dir=${2:-}

# The newest server installed: Debian's /usr/lib/postgresql/<version>/bin, else PATH.
bindir="${CORIO_PG_BINDIR:-}"
if [ -z "$bindir" ]; then
  # The glob sorts 10 before 9: the highest version number, by sort -V.
  bindir=$(for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && echo "$d"; done | sort -t/ -k5 -V | tail -n1)
fi
if [ -z "$bindir" ] && command -v initdb >/dev/null; then bindir=$(dirname "$(command -v initdb)"); fi
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ] || [ ! -x "$bindir/pg_ctl" ]; then
  echo "server.sh: no PostgreSQL server found (no /usr/lib/postgresql/*/bin/initdb, no initdb on PATH)." >&2
  echo "server.sh: install it (Debian: apt-get install postgresql; cmake/install-deps.sh does), or configure" >&2
  echo "server.sh: with -DCORIO_POSTGRES_TESTS=OFF to leave corio::pg's server tests out." >&2
  exit 1
fi

as=()
owner=$(id -un)
if [ "$(id -u)" = 0 ]; then
  owner=postgres
  if ! id -u "$owner" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$owner"
  fi
  as=(runuser -u "$owner" --)
fi

stop_server() {
  if [ -f "$dir/data/postmaster.pid" ]; then
    "${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null ||
      "${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null || true
  fi
}

case "$cmd" in
  check)
    echo "server.sh: PostgreSQL server binaries in $bindir"
    ;;
  start)
    [ $# -eq 3 ] || usage
    port=$3
    stop_server  # one left running by an interrupted run
    rm -rf "$dir"
    mkdir -p "$dir"
    chmod 700 "$dir"
    [ "$owner" = "$(id -un)" ] || chown "$owner" "$dir"
    "${as[@]}" "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale -N >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; echo "server.sh: initdb failed" >&2; exit 1; }
    "${as[@]}" sh -c "printf '%s\n' 'local all corio_password scram-sha-256' 'local all all trust' >'$dir/data/pg_hba.conf'"
    if ! "${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-k $dir -p $port -c listen_addresses='' -c max_connections=300 -c shared_buffers=32MB -c fsync=off" \
      start >/dev/null; then
      cat "$dir/server.log" >&2 || true
      echo "server.sh: the server did not start" >&2
      exit 1
    fi
    "${as[@]}" "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres \
      -c "SET password_encryption = 'scram-sha-256'; CREATE ROLE corio_password LOGIN PASSWORD 'corio-secret';"
    echo "server.sh: PostgreSQL ($("$bindir/postgres" --version)) on socket $dir, port $port"
    ;;
  stop)
    stop_server
    rm -rf "$dir"
    echo "server.sh: stopped, $dir removed"
    ;;
  *) usage ;;
esac

#!/usr/bin/env bash
# Runs an example server against real clients and checks what they see.
#
#     serve_check.sh echo|curl|wrk <directory of the example binaries>
#
# The backend is whatever CORIO_BACKEND says. Every check failing prints why and exits 1.
set -euo pipefail

mode=$1
bin=$2
work=$(mktemp -d)
server_pid=""
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then kill -KILL "$server_pid" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  echo "--- server output:" >&2
  cat "$work/server.log" >&2 || true
  exit 1
}

# Starts a server whose first line says "listening on port N"; sets $port.
start() {
  "$@" >"$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    port=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$work/server.log")
    [[ -n $port ]] && return 0
    kill -0 "$server_pid" 2>/dev/null || fail "the server died at start"
    sleep 0.05
  done
  fail "the server did not start"
}

# SIGINT, then the server must exit 0 by itself within 10 s.
stop() {
  kill -INT "$server_pid"
  for _ in $(seq 200); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
      local rc=0
      wait "$server_pid" || rc=$?
      server_pid=""
      [[ $rc == 0 ]] || fail "the server exited with $rc after SIGINT"
      grep -q "stopped cleanly" "$work/server.log" || fail "no clean stop reported"
      return 0
    fi
    sleep 0.05
  done
  fail "the server did not stop within 10 s of SIGINT"
}

# Sends raw bytes on a fresh connection; prints what comes back until the server closes.
# (Capture it before grepping: `grep -q` in a pipe would close the pipe under python.)
raw() {
  python3 - "$port" "$1" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(sys.argv[2].encode().decode("unicode_escape").encode("latin-1"))
out = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    out += d
print(out.decode("latin-1"))
PY
}

case $mode in
  echo)
    start "$bin/echo_server" 0
    out=$("$bin/echo_client" "127.0.0.1:$port" 200 200 128) || fail "echo_client failed: $out"
    echo "$out"
    grep -q "messages/s" <<<"$out" || fail "no throughput line"
    out=$("$bin/echo_client" "127.0.0.1:$port" 2 20 100000) || fail "large messages failed: $out"
    stop
    ;;

  curl)
    mkdir "$work/www"
    printf 'static file\n' >"$work/www/a.txt"
    head -c 300000 /dev/urandom >"$work/www/big.bin"
    start "$bin/http_server" --port 0 --root "$work/www" --idle-ms 500 --header-ms 1000
    url="http://127.0.0.1:$port"
    [[ $(curl -sf "$url/") == "Hello, world!" ]] || fail "GET / did not say hello"
    [[ $(curl -sf "$url/static/a.txt") == "static file" ]] || fail "GET /static/a.txt"
    curl -sf "$url/static/big.bin" -o "$work/big.copy" || fail "GET /static/big.bin"
    cmp -s "$work/www/big.bin" "$work/big.copy" || fail "the big file arrived changed"
    [[ $(curl -s -o /dev/null -w '%{http_code}' "$url/nothing") == 404 ]] || fail "no 404 for a missing route"
    [[ $(curl -s -o /dev/null -w '%{http_code}' "$url/static/missing.txt") == 404 ]] || fail "no 404 for a missing file"
    [[ $(curl -s -o /dev/null -w '%{http_code}' "$url/static/../serve_check.sh") == 404 ]] || fail "path escape"
    [[ $(curl -s -o /dev/null -w '%{http_code}' -X POST "$url/") == 405 ]] || fail "no 405 for POST"
    # keep-alive: two requests, one connection
    curl -sv "$url/" "$url/static/a.txt" >"$work/ka.out" 2>&1 || fail "keep-alive requests"
    grep -qi "re-using existing connection" "$work/ka.out" || fail "curl did not reuse the connection"
    # malformed requests on a raw socket: 400 and the connection closes
    out=$(raw 'GARBAGE\r\n\r\n')
    [[ $out == "HTTP/1.1 400 "* ]] || fail "no 400 for a malformed request line: $out"
    out=$(raw 'GET / HTTP/1.1\r\nno colon here\r\n\r\n')
    [[ $out == "HTTP/1.1 400 "* ]] || fail "no 400 for a bad header: $out"
    out=$(raw 'GET / HTTP/9.9\r\n\r\n')
    [[ $out == "HTTP/1.1 400 "* ]] || fail "no 400 for a bad version: $out"
    big=$(head -c 9000 /dev/zero | tr '\0' 'a')
    out=$(raw "GET / HTTP/1.1\r\nX-Big: $big\r\n\r\n")
    [[ $out == "HTTP/1.1 431 "* ]] || fail "no 431 for huge headers: $out"
    # two pipelined requests on one connection, the second closing it
    out=$(raw 'GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    n=$(grep -c "Hello, world!" <<<"$out") || true
    [[ $n == 2 ]] || fail "pipelined requests: $n answers"
    # an idle client is dropped after --idle-ms (the raw helper returns when closed)
    start_s=$(date +%s%N)
    raw '' >/dev/null
    ms=$((($(date +%s%N) - start_s) / 1000000))
    ((ms >= 400 && ms < 5000)) || fail "idle connection closed after $ms ms"
    # a slow client that never finishes its headers is dropped after --header-ms
    start_s=$(date +%s%N)
    raw 'GET / HTTP/1.1\r\nHost: x\r\n' >/dev/null
    ms=$((($(date +%s%N) - start_s) / 1000000))
    ((ms >= 900 && ms < 6000)) || fail "slow client dropped after $ms ms"
    curl -sf "$url/" >/dev/null || fail "the server no longer answers"
    stop
    echo "http_server: every curl and raw-socket check passed"
    ;;

  wrk)
    start "$bin/http_server" --port 0
    out=$(wrk -t2 -c50 -d2s "http://127.0.0.1:$port/") || fail "wrk failed"
    echo "$out"
    grep -q "Requests/sec" <<<"$out" || fail "wrk printed no rate"
    ! grep -q "Socket errors" <<<"$out" || fail "wrk saw socket errors"
    ! grep -q "Non-2xx" <<<"$out" || fail "wrk saw non-2xx answers"
    kill -0 "$server_pid" || fail "the server died under load"
    curl -sf "http://127.0.0.1:$port/" >/dev/null || fail "the server no longer answers"
    stop
    ;;

  *)
    echo "usage: serve_check.sh echo|curl|wrk <bin dir>" >&2
    exit 2
    ;;
esac

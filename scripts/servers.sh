#!/usr/bin/env bash
# The local stand-ins esign.plone talks to in `make start`: BankID RP API v6 (test),
# a SITHS eTjänstekort OpenID Connect provider (test) and a mail catcher.
#
#   bash scripts/servers.sh start    start them in the background, wait until they answer,
#                                    write var/run/esign.env (the ESIGN_* variables)
#   bash scripts/servers.sh stop     stop them (the processes named in var/run/*.pid)
#   bash scripts/servers.sh status   which run
#
# Each server runs in its own process group; its PID is in var/run/<name>.pid and its
# output in var/log/<name>.log. Keys and mails stay in var/bankid-test, var/oidc-test and
# var/mail, so a restart reuses them. scripts/start.sh sources this file for the functions.
#
# Ports (environment, defaults): ESIGN_BANKID_API_PORT 18443, ESIGN_BANKID_PAGE_PORT 18444,
# ESIGN_OIDC_PORT 18445, ESIGN_SMTP_PORT 8025, ESIGN_MAIL_PAGE_PORT 8026.

SERVERS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVERS_BIN="${VENV:-$SERVERS_ROOT/.venv}/bin"
SERVERS_VAR="$SERVERS_ROOT/var"
SERVERS_RUN="$SERVERS_VAR/run"
SERVERS_LOG="$SERVERS_VAR/log"
SERVERS_ENV_FILE="$SERVERS_RUN/esign.env"
SERVERS_NAMES=(bankid oidc mail)
SERVERS_TIMEOUT="${ESIGN_SERVERS_TIMEOUT:-60}"

BANKID_API_PORT="${ESIGN_BANKID_API_PORT:-18443}"
BANKID_PAGE_PORT="${ESIGN_BANKID_PAGE_PORT:-18444}"
OIDC_PORT="${ESIGN_OIDC_PORT:-18445}"
SMTP_PORT="${ESIGN_SMTP_PORT:-8025}"
MAIL_PAGE_PORT="${ESIGN_MAIL_PAGE_PORT:-8026}"
OIDC_CLIENT_ID="esign-plone"
OIDC_CLIENT_SECRET="esign-plone-secret"

BANKID_PAGE_URL="http://127.0.0.1:$BANKID_PAGE_PORT/"
OIDC_DISCOVERY_URL="http://127.0.0.1:$OIDC_PORT/.well-known/openid-configuration"
MAIL_PAGE_URL="http://127.0.0.1:$MAIL_PAGE_PORT/"

# "name:port name:port ..." -> prints "name (port)" for each port on 127.0.0.1 that is taken.
servers_taken_ports() {
  "$SERVERS_BIN/python" - "$@" <<'PY'
import socket, sys
for item in sys.argv[1:]:
    name, port = item.rsplit(":", 1)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is no conflict
    try:
        s.bind(("127.0.0.1", int(port)))
    except OSError:
        print(f"{port} ({name})")
    finally:
        s.close()
PY
}

# True while process $1 runs; an exited child not yet reaped (a zombie) does not count.
proc_alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
  stat="${stat##*) }"
  [ "${stat%% *}" != "Z" ]
}

# The PID in var/run/<name>.pid if that process still runs, else nothing.
servers_pid() {
  local file="$SERVERS_RUN/$1.pid" pid
  [ -f "$file" ] || return 1
  pid="$(cat "$file" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] && proc_alive "$pid" || return 1
  echo "$pid"
}

# Hints for ports held by servers an earlier `make start` left running.
servers_leftover_hint() {
  local name pid found=""
  for name in "${SERVERS_NAMES[@]}"; do
    if pid="$(servers_pid "$name")"; then
      echo "  var/run/$name.pid: the $name server (pid $pid) still runs" >&2
      found=1
    fi
  done
  if [ -n "$found" ]; then
    echo "  If no 'make start' runs, these are left over; stop them with: bash scripts/servers.sh stop" >&2
  fi
}

# Start one server in its own session/process group: servers_spawn name command args...
servers_spawn() {
  local name="$1"
  shift
  [ -f "$SERVERS_LOG/$name.log" ] && mv -f "$SERVERS_LOG/$name.log" "$SERVERS_LOG/$name.log.1"
  # The background child of a non-interactive bash is no group leader, so setsid() works and the
  # exec'd server keeps $! as its PID (= its process group id). SIGINT is set back to default:
  # bash starts background commands with it ignored.
  PYTHONUNBUFFERED=1 "$SERVERS_BIN/python" -c '
import os, signal, sys
os.setsid()
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execv(sys.argv[1], sys.argv[1:])
' "$@" >"$SERVERS_LOG/$name.log" 2>&1 </dev/null &
  echo "$!" >"$SERVERS_RUN/$name.pid"
}

# Wait until every server answers; fail (with its log) if one exits or the time runs out.
servers_wait() {
  "$SERVERS_BIN/python" - "$SERVERS_TIMEOUT" "$SERVERS_RUN" "$SERVERS_LOG" \
    "bankid=tcp:127.0.0.1:$BANKID_API_PORT" "bankid=http:$BANKID_PAGE_URL" \
    "oidc=http:$OIDC_DISCOVERY_URL" "mail=http:$MAIL_PAGE_URL" \
    "bankid=log:export ESIGN_BANKID_CA=" "oidc=log:ESIGN_OIDC_CLIENT_SECRET=" "mail=log:E-post (lokal):" <<'PY'
import os, socket, sys, time, urllib.request
from pathlib import Path

timeout, run, log = float(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
checks = [arg.split("=", 1) for arg in sys.argv[4:]]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy


def ok(kind_target: str, name: str) -> bool:
    kind, target = kind_target.split(":", 1)
    try:
        if kind == "tcp":
            host, port = target.rsplit(":", 1)
            socket.create_connection((host, int(port)), timeout=1).close()
            return True
        if kind == "http":
            with opener.open(target, timeout=2) as response:
                return response.status == 200
        if kind == "log":
            return target in (log / f"{name}.log").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    raise ValueError(kind)


def alive(name: str) -> bool:
    try:
        pid = int((run / f"{name}.pid").read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    try:  # an exited child that bash has not reaped yet is a zombie
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


deadline = time.monotonic() + timeout
pending = list(checks)
while pending:
    for name in {n for n, _ in pending}:
        if not alive(name):
            print(f"start: the {name} server exited; var/log/{name}.log says:", file=sys.stderr)
            print((log / f"{name}.log").read_text(errors="replace")[-3000:], file=sys.stderr)
            sys.exit(1)
    pending = [(n, c) for n, c in pending if not ok(c, n)]
    if pending and time.monotonic() > deadline:
        for name, check in pending:
            print(f"start: the {name} server does not answer ({check}) after {timeout:.0f} s; "
                  f"see var/log/{name}.log", file=sys.stderr)
        sys.exit(1)
    if pending:
        time.sleep(0.2)
PY
}

# Stop the servers named in var/run/*.pid: SIGTERM to each process group, SIGKILL after 10 s.
servers_stop() {
  local name pid i
  local -a pids=()
  for name in "${SERVERS_NAMES[@]}"; do
    if pid="$(servers_pid "$name")"; then
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
    rm -f "$SERVERS_RUN/$name.pid"
  done
  for pid in "${pids[@]}"; do
    for ((i = 0; i < 100; i++)); do
      proc_alive "$pid" || break
      sleep 0.1
    done
    if proc_alive "$pid"; then
      echo "servers: pid $pid did not stop on SIGTERM; killing it" >&2
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  rm -f "$SERVERS_ENV_FILE"
}

# Start the three servers, wait for them and export the ESIGN_* variables into this shell
# (and write them to var/run/esign.env). Returns non-zero, servers stopped, on failure.
servers_start() {
  mkdir -p "$SERVERS_RUN" "$SERVERS_LOG" "$SERVERS_VAR/mail"
  mkdir -p -m 700 "$SERVERS_VAR/bankid-test" "$SERVERS_VAR/oidc-test"
  local tool
  for tool in esign-bankid-test-server esign-oidc-test-server esign-mail-catcher; do
    [ -x "$SERVERS_BIN/$tool" ] || { echo "servers: $SERVERS_BIN/$tool missing; run 'make venv'" >&2; return 1; }
  done

  servers_spawn bankid "$SERVERS_BIN/esign-bankid-test-server" --dir "$SERVERS_VAR/bankid-test" \
    --api-port "$BANKID_API_PORT" --page-port "$BANKID_PAGE_PORT"
  servers_spawn oidc "$SERVERS_BIN/esign-oidc-test-server" --port "$OIDC_PORT" \
    --client-id "$OIDC_CLIENT_ID" --client-secret "$OIDC_CLIENT_SECRET" \
    --redirect-uri 'http://localhost:8080/*' --redirect-uri 'http://127.0.0.1:8080/*' \
    --key-dir "$SERVERS_VAR/oidc-test"
  servers_spawn mail "$SERVERS_BIN/esign-mail-catcher" --dir "$SERVERS_VAR/mail" \
    --smtp-port "$SMTP_PORT" --http-port "$MAIL_PAGE_PORT"

  if ! servers_wait; then
    servers_stop
    return 1
  fi

  # The servers print what esign.plone needs; take it from their output.
  local line
  : >"$SERVERS_ENV_FILE"
  while IFS= read -r line; do
    line="${line#"${line%%[![:space:]]*}"}"
    line="${line#export }"
    [[ "$line" =~ ^ESIGN_[A-Z_]+=.+$ ]] || continue
    export "${line?}"
    printf 'export %s=%q\n' "${line%%=*}" "${line#*=}" >>"$SERVERS_ENV_FILE"
  done < <(grep -hE '^\s*(export )?ESIGN_[A-Z_]+=' "$SERVERS_LOG/bankid.log" "$SERVERS_LOG/oidc.log")
  export ESIGN_SMTP_HOST=127.0.0.1 ESIGN_SMTP_PORT="$SMTP_PORT"
  printf 'export ESIGN_SMTP_HOST=127.0.0.1\nexport ESIGN_SMTP_PORT=%s\n' "$SMTP_PORT" >>"$SERVERS_ENV_FILE"
  local var
  for var in ESIGN_BANKID_URL ESIGN_BANKID_CERT ESIGN_BANKID_KEY ESIGN_BANKID_CA \
    ESIGN_OIDC_ISSUER ESIGN_OIDC_CLIENT_ID ESIGN_OIDC_CLIENT_SECRET; do
    if [ -z "${!var:-}" ]; then
      echo "servers: $var not found in the servers' output (var/log/*.log)" >&2
      servers_stop
      return 1
    fi
  done
}

servers_status() {
  local name pid
  for name in "${SERVERS_NAMES[@]}"; do
    if pid="$(servers_pid "$name")"; then
      echo "$name: runs (pid $pid, log var/log/$name.log)"
    else
      echo "$name: stopped"
    fi
  done
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  case "${1:-}" in
    start)
      taken="$(servers_taken_ports "BankID API:$BANKID_API_PORT" "BankID page:$BANKID_PAGE_PORT" \
        "OIDC:$OIDC_PORT" "SMTP:$SMTP_PORT" "mail page:$MAIL_PAGE_PORT")"
      if [ -n "$taken" ]; then
        echo "servers: ports already in use: $(echo "$taken" | paste -sd, - | sed 's/,/, /g')" >&2
        servers_leftover_hint
        exit 1
      fi
      servers_start
      echo "BankID (test):          $BANKID_PAGE_URL"
      echo "eTjänstekort (test IdP): $ESIGN_OIDC_ISSUER"
      echo "E-post (lokal):         $MAIL_PAGE_URL"
      echo "Environment for esign.plone: source $SERVERS_ENV_FILE"
      ;;
    stop) servers_stop ;;
    status) servers_status ;;
    *)
      echo "usage: bash scripts/servers.sh start|stop|status" >&2
      exit 2
      ;;
  esac
fi

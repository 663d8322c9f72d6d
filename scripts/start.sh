#!/usr/bin/env bash
# make start: a Zope/Plone instance on http://localhost:8080/Plone with esign.plone,
# a demo officer and a demo case, and the local servers of the signer journey
# (scripts/servers.sh: BankID test server, SITHS eTjänstekort test IdP, mail catcher),
# which run while the site runs and stop with it. Data lives in var/ and survives restarts.
#
#   ESIGN_ADMIN_PASSWORD    Zope admin password when instance/ is first made (default admin)
#   ESIGN_OFFICER_PASSWORD  password of the demo officer when first made (default officer)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"
VENV="${VENV:-$ROOT/.venv}"
BIN="$VENV/bin"
INSTANCE="$ROOT/instance"
VAR="$ROOT/var"
ADMIN_PW="${ESIGN_ADMIN_PASSWORD:-admin}"
export ESIGN_OFFICER_PASSWORD="${ESIGN_OFFICER_PASSWORD:-officer}"
export ESIGN_PKI_DIR="$VAR/esign-pki"
URL="http://localhost:8080/Plone"

for tool in mkwsgiinstance zconsole runwsgi; do
  [ -x "$BIN/$tool" ] || { echo "start: $BIN/$tool missing; run 'make venv'" >&2; exit 1; }
done

# shellcheck source=scripts/servers.sh
source "$ROOT/scripts/servers.sh"

taken="$(servers_taken_ports "Plone:8080" "SMTP:$SMTP_PORT" "E-post page:$MAIL_PAGE_PORT" \
  "BankID API:$BANKID_API_PORT" "BankID page:$BANKID_PAGE_PORT" "OIDC IdP:$OIDC_PORT")"
if [ -n "$taken" ]; then
  echo "start: these ports on 127.0.0.1 are already in use: $(echo "$taken" | paste -sd, - | sed 's/,/, /g')." >&2
  echo "start: stop what listens there (a running 'make start'?) and try again." >&2
  servers_leftover_hint
  exit 1
fi

mkdir -p "$VAR/filestorage"
mkdir -p -m 700 "$VAR/blobstorage" "$ESIGN_PKI_DIR"

if [ ! -f "$INSTANCE/etc/zope.conf" ]; then
  echo "start: creating the Zope instance in instance/"
  "$BIN/mkwsgiinstance" -d "$INSTANCE" -u "admin:$ADMIN_PW"
fi
"$BIN/python" scripts/configure_instance.py "$INSTANCE/etc/zope.conf" "$VAR"

RUNWSGI_PID=""
stop_all() {
  local rc=$? i
  # Ignore further signals while cleaning up: make forwards SIGTERM to this shell a second time.
  trap "" INT TERM
  trap - EXIT
  if [ -n "$RUNWSGI_PID" ] && proc_alive "$RUNWSGI_PID"; then
    # Ctrl-C or a signal to the process group reaches runwsgi too; give it a moment first.
    for ((i = 0; i < 30; i++)); do proc_alive "$RUNWSGI_PID" || break; sleep 0.1; done
    if proc_alive "$RUNWSGI_PID"; then
      kill -INT "$RUNWSGI_PID" 2>/dev/null || true
      for ((i = 0; i < 150; i++)); do proc_alive "$RUNWSGI_PID" || break; sleep 0.1; done
      kill -TERM "$RUNWSGI_PID" 2>/dev/null || true
    fi
    wait "$RUNWSGI_PID" 2>/dev/null || true
  fi
  servers_stop
  echo "start: stopped (Plone and the local servers)." >&2
  exit "$rc"
}
trap stop_all EXIT
trap 'trap "" INT TERM; exit 130' INT
trap 'trap "" INT TERM; exit 143' TERM

t0=$SECONDS
echo "start: starting the local servers (logs in var/log/, PIDs in var/run/)"
servers_start
echo "start: servers answer after $((SECONDS - t0)) s; their ESIGN_* variables are in var/run/esign.env"

t1=$SECONDS
echo "start: preparing the site (zconsole run; creates only what is missing)"
if ! "$BIN/zconsole" run "$INSTANCE/etc/zope.conf" scripts/create_site.py; then
  echo "start: site creation failed. If a server is still running on this Data.fs, stop it first." >&2
  exit 1
fi
echo "start: site ready after $((SECONDS - t1)) s"

cat <<BANNER

  E-underskrift (demo) runs at   $URL
  Zope admin:                    admin / $ADMIN_PW   (as set when instance/ was first made)
  Handläggare (SigningOfficer):  officer / $ESIGN_OFFICER_PASSWORD   (as set when the site was first made)
  Demo case:                     $URL/avtal-om-vardtjanster-demo

  BankID (test):                 $BANKID_PAGE_URL
  eTjänstekort (test IdP):       $ESIGN_OIDC_ISSUER
  E-post (lokal):                $MAIL_PAGE_URL

  Try the journey: log in as officer, open the demo case, choose "Skicka för underskrift" in
  the state menu, then read the mail at $MAIL_PAGE_URL and click "Hantera ärendet".

  Stop with Ctrl-C (stops the local servers too).
  Data: var/filestorage, var/blobstorage, var/esign-pki, var/mail; logs: var/log/.

BANNER
# A child, not exec, so that the trap stops the servers when runwsgi ends. Bash starts
# background commands with SIGINT ignored; set it back so Ctrl-C reaches runwsgi.
"$BIN/python" -c '
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execv(sys.argv[1], sys.argv[1:])
' "$BIN/runwsgi" "$INSTANCE/etc/zope.ini" &
RUNWSGI_PID=$!
wait "$RUNWSGI_PID"

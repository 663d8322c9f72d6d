#!/usr/bin/env bash
# make start: a Zope/Plone instance on http://localhost:8080/Plone with esign.plone,
# a demo officer and a demo case. Data lives in var/ and survives restarts.
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

if "$BIN/python" -c '
import socket, sys
s = socket.socket()
s.settimeout(0.5)
sys.exit(0 if s.connect_ex(("127.0.0.1", 8080)) == 0 else 1)
'; then
  echo "start: something already listens on 127.0.0.1:8080 (a running 'make start'?); stop it first." >&2
  exit 1
fi

mkdir -p "$VAR/filestorage"
mkdir -p -m 700 "$VAR/blobstorage" "$ESIGN_PKI_DIR"

if [ ! -f "$INSTANCE/etc/zope.conf" ]; then
  echo "start: creating the Zope instance in instance/"
  "$BIN/mkwsgiinstance" -d "$INSTANCE" -u "admin:$ADMIN_PW"
fi
"$BIN/python" scripts/configure_instance.py "$INSTANCE/etc/zope.conf" "$VAR"

echo "start: preparing the site (zconsole run; creates only what is missing)"
if ! "$BIN/zconsole" run "$INSTANCE/etc/zope.conf" scripts/create_site.py; then
  echo "start: site creation failed. If a server is still running on this Data.fs, stop it first." >&2
  exit 1
fi

cat <<BANNER

  E-underskrift (demo) runs at   $URL
  Zope admin:                    admin / $ADMIN_PW   (as set when instance/ was first made)
  Handläggare (SigningOfficer):  officer / $ESIGN_OFFICER_PASSWORD   (as set when the site was first made)
  Demo case:                     $URL/avtal-om-vardtjanster-demo
  Stop with Ctrl-C. Data: var/filestorage, var/blobstorage, var/esign-pki.

BANNER
exec "$BIN/runwsgi" "$INSTANCE/etc/zope.ini"

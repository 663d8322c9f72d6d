#!/usr/bin/env bash
# Install the Debian packages the test suite and the demo call by name:
#   poppler-utils (pdfsig), qpdf (qpdf), libnss3-tools (certutil),
#   chromium (the browser the end-to-end journey test drives with Playwright),
#   softhsm2 (a PKCS#11 token for the CA/TSA keys in tests), fonts-dejavu-core (the
#   OpenType font of the visible signature stamps), openssl (independent OCSP/CRL checks),
#   postgresql (the server binaries, /usr/lib/postgresql/*/bin, for the cluster test and
#   `make start-cluster`; they run their own data directory, not the packaged cluster).
# Fast when everything is present: apt-get runs only for what is missing.
set -euo pipefail

declare -A COMMAND_OF=(
  [poppler-utils]=pdfsig
  [qpdf]=qpdf
  [libnss3-tools]=certutil
  [chromium]=chromium
  [softhsm2]=softhsm2-util
  [fonts-dejavu-core]=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
  [openssl]=openssl
  [postgresql]=/usr/lib/postgresql
)

# A command name, or an absolute path for packages without one (fonts).
_present() {
  if [[ "$1" == /* ]]; then [ -e "$1" ]; else command -v "$1" >/dev/null 2>&1; fi
}

missing=()
for pkg in poppler-utils qpdf libnss3-tools chromium softhsm2 fonts-dejavu-core openssl postgresql; do
  if _present "${COMMAND_OF[$pkg]}" \
     && dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then
    continue
  fi
  if _present "${COMMAND_OF[$pkg]}" && ! command -v dpkg >/dev/null 2>&1; then
    continue  # not a Debian system, but the tool is there
  fi
  missing+=("$pkg")
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "system-deps: pdfsig, qpdf, certutil, chromium, softhsm2, fonts, openssl and postgresql are installed."
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  echo "system-deps: missing ${missing[*]}; run as root or install them by hand:" >&2
  echo "  apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: missing ${missing[*]} and there is no apt-get here; install them by hand." >&2
  exit 1
fi

echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update
"${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}"

for pkg in "${missing[@]}"; do
  _present "${COMMAND_OF[$pkg]}" || {
    echo "system-deps: ${COMMAND_OF[$pkg]} still missing after installing $pkg" >&2
    exit 1
  }
done
echo "system-deps: done."

"""Point a ``mkwsgiinstance`` zope.conf at the repository's ``var/``; safe to run again.

    python scripts/configure_instance.py instance/etc/zope.conf var

Rewrites the ``<filestorage>`` section to ``var/filestorage/Data.fs`` with
``blob-dir var/blobstorage`` (without a blob-dir, file uploads fail) and puts
``ESIGN_PKI_DIR`` (``var/esign-pki``) into the ``<environment>`` section, so the
server finds the site's CA even when started without the Makefile.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def configure(conf_path: Path, var: Path) -> bool:
    text = conf_path.read_text(encoding="utf-8")
    original = text
    storage = (
        "<filestorage>\n"
        f"     path {var / 'filestorage' / 'Data.fs'}\n"
        f"     blob-dir {var / 'blobstorage'}\n"
        "   </filestorage>"
    )
    text, count = re.subn(r"<filestorage>.*?</filestorage>", lambda _m: storage, text, count=1, flags=re.S)
    if count != 1:
        raise SystemExit(f"{conf_path}: no <filestorage> section to rewrite")

    pki_line = f"  ESIGN_PKI_DIR {var / 'esign-pki'}"
    env = re.search(r"^<environment>\n(.*?)^</environment>", text, flags=re.S | re.M)
    if env:
        body = [line for line in env.group(1).splitlines() if not line.strip().startswith("ESIGN_PKI_DIR")]
        body.append(pki_line)
        text = text[: env.start(1)] + "\n".join(body) + "\n" + text[env.end(1) :]
    else:
        text += f"\n<environment>\n{pki_line}\n</environment>\n"

    if text != original:
        conf_path.write_text(text, encoding="utf-8")
    return text != original


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    changed = configure(Path(sys.argv[1]), Path(sys.argv[2]).resolve())
    print(f"{sys.argv[1]}: {'updated' if changed else 'up to date'}")

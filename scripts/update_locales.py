"""Extract esign.plone's message ids and write the English catalog.

Swedish is the source language: the templates and the ``_()`` defaults are
Swedish (or English for control-panel labels). This script collects every
message id from the page templates and from ``_("id", default=...)`` calls,
writes ``locales/esign.plone.pot``, merges it into
``locales/en/LC_MESSAGES/esign.plone.po`` (keeping existing translations and
marking new ids with an empty msgstr) and compiles the ``.mo`` that Zope reads;
the same for ``sv``, where only the (English) control-panel labels need one.

    .venv/bin/python scripts/update_locales.py
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from pythongettext.msgfmt import Msgfmt

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "esign" / "plone"
LOCALES = PACKAGE / "locales"
DOMAIN = "esign.plone"

_ELEMENT = re.compile(r'<(\w+)\b([^>]*?)\bi18n:translate="([^"]*)"([^>]*)>(.*?)</\1>', re.S)
_NAMED = re.compile(r'<(\w+)\b[^>]*\bi18n:name="(\w+)"[^>]*>.*?</\1>', re.S)


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def from_templates() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.pt")):
        source = path.read_text(encoding="utf-8")
        if f'i18n:domain="{DOMAIN}"' not in source:
            continue
        for match in _ELEMENT.finditer(source):
            msgid, body = match.group(3), match.group(5)
            body = _NAMED.sub(lambda m: "${" + m.group(2) + "}", body)
            if "<" in body:  # markup we do not translate as one message
                continue
            default = _normalise(body)
            if default or msgid:
                found.setdefault(msgid or default, default)
    return found


#: Where the defaults are English (the control panel's settings schema); elsewhere they are Swedish.
ENGLISH_SOURCES = ("interfaces.py",)


def from_python(paths=None) -> dict[str, str]:
    found: dict[str, str] = {}
    for path in paths or sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_"):
                continue
            if not node.args or not isinstance(node.args[0], ast.Constant):
                continue
            msgid = node.args[0].value
            default = next(
                (
                    kw.value.value
                    for kw in node.keywords
                    if kw.arg == "default" and isinstance(kw.value, ast.Constant)
                ),
                msgid,
            )
            found.setdefault(msgid, default)
    return found


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def read_po(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    entries: dict[str, str] = {}
    msgid = msgstr = None
    current = None
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if line.startswith("msgid "):
            if msgid is not None and msgstr is not None:
                entries[msgid] = msgstr
            msgid, msgstr, current = ast.literal_eval(line[6:]), None, "id"
        elif line.startswith("msgstr "):
            msgstr, current = ast.literal_eval(line[7:]), "str"
        elif line.startswith('"') and current:
            if current == "id":
                msgid += ast.literal_eval(line)
            else:
                msgstr += ast.literal_eval(line)
        elif not line.strip() and msgid is not None and msgstr is not None:
            entries[msgid] = msgstr
            msgid = msgstr = current = None
    entries.pop("", None)
    return entries


def write_po(path: Path, messages: dict[str, str], translations: dict[str, str] | None, *, lang: str) -> None:
    header = (
        f'msgid ""\nmsgstr ""\n"Project-Id-Version: {DOMAIN}\\n"\n"Language: {lang}\\n"\n'
        '"MIME-Version: 1.0\\n"\n"Content-Type: text/plain; charset=utf-8\\n"\n'
        '"Content-Transfer-Encoding: 8bit\\n"\n'
        f'"Domain: {DOMAIN}\\n"\n\n'
    )
    parts = [header]
    for msgid, default in sorted(messages.items()):
        if default != msgid:
            parts.append(f"#. Default: {_quote(default)}\n")
        value = "" if translations is None else translations.get(msgid, "")
        parts.append(f"msgid {_quote(msgid)}\nmsgstr {_quote(value)}\n\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(parts), encoding="utf-8")


def from_validation_explanations() -> dict[str, str]:
    """The explanations of validation outcomes: their msgids are built at run time."""
    import sys

    sys.path.insert(0, str(PACKAGE.parent.parent))
    from esign.plone.signing.reports import EXPLANATIONS

    return {f"validation_explanation_{key}": text for key, text in EXPLANATIONS.items()}


def main() -> None:
    messages = {**from_python(), **from_templates(), **from_validation_explanations()}
    english = set(from_python([PACKAGE / name for name in ENGLISH_SOURCES]))
    write_po(LOCALES / f"{DOMAIN}.pot", messages, None, lang="")
    for lang in ("en", "sv"):
        po = LOCALES / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
        translations = read_po(po)
        write_po(po, messages, translations, lang=lang)
        po.with_suffix(".mo").write_bytes(Msgfmt(str(po)).get())
        # A default in the catalog's own language needs no msgstr.
        missing = [m for m in messages if not translations.get(m) and (lang == "sv") == (m in english)]
        print(f"{lang}: {len(messages)} messages, {len(missing)} without a translation")
        for msgid in missing:
            print(f"  untranslated: {msgid!r}")


if __name__ == "__main__":
    main()

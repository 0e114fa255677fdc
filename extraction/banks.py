"""The bank catalog (`config/banks.json`) and every way a bank is recognised on a receipt.

The catalog is the only place bank facts live. A bank is recognised from its 4-digit code as
receipts print it ("0105 - BANCO MERCANTIL", "Banco de Venezuela (0102)"), from an alias anywhere
in a text ("PagomóvilBDV", "CorrienteBNC", "BBVA PROVINCIAL"), or from the code prefix of an
account ("0102****4821"). Aliases are matched accent- and case-insensitively, token by token,
tolerating one OCR error in long words.
"""
from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from extraction.normalizers import MASK_CHARS, tokenize
from extraction.phrases import PhraseIndex


class BankCatalogError(ValueError):
    """The catalog file is missing or malformed."""


@dataclass(frozen=True)
class Bank:
    code: str
    name: str
    aliases: tuple[str, ...]
    apps: tuple[str, ...] = ()  # the bank's own apps' names and signatures ("Tpago")
    domains: tuple[str, ...] = ()  # its online-banking domains ("venezolano.com")


@dataclass(frozen=True)
class BankMatch:
    bank: Bank
    start: int  # character span of the alias in the searched text
    end: int


# A bank code printed before the name ("0105 - BANCO MERCANTIL", "0108-BBVA") or in brackets.
# OCR may read the leading zero as the letter O ("O191 - Banco Nacional de Crédito").
_LEADING_CODE = re.compile(r"^\W*([0Oo]\d{3})\s*[-–:)]?\s*(?=[^\W\d_]|$)")
_BRACKETED_CODE = re.compile(r"\(\s*([0Oo]\d{3})\s*\)")
_DOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?)+")
# A web address as an address bar shows it: optional scheme, a host of 2+ dotted labels, a path.
_HOST = re.compile(r"(?<![\w.@])(?:https?://)?(?P<host>(?:[a-z0-9\-]+\.)+[a-z]{2,6})(?![\w\-])(?:[/:?#]\S*)?")
_ACCOUNT_PREFIX = re.compile(r"^\s*(0\d{3})(?=[\d*•·…xX\s-])")


class BankCatalog:
    def __init__(self, banks: list[Bank], legal_suffixes: tuple[str, ...] = ()) -> None:
        self.banks = tuple(banks)
        self._by_code = {bank.code: bank for bank in banks}
        phrases: list[tuple[tuple[str, ...], object]] = []
        for bank in banks:
            for alias in {bank.name, *bank.aliases}:
                tokens = tuple(t.norm for t in tokenize(alias))
                if tokens:
                    phrases.append((tokens, bank))
                    if len(tokens) > 1:  # "PAGOMOVILBDV" printed without a case change
                        phrases.append((("".join(tokens),), bank))
        # Bank words are common Spanish words ("Plaza", "Activo", "Exterior"): fuzzy from 7 chars.
        self._aliases = PhraseIndex(phrases, fuzzy_from=7)
        self.legal_suffixes = tuple(legal_suffixes)
        app_phrases: list[tuple[tuple[str, ...], object]] = []
        for bank in banks:
            for app in bank.apps:
                tokens = tuple(t.norm for t in tokenize(app))
                if tokens:
                    app_phrases.append((tokens, bank))
                    if len(tokens) > 1:  # "pagomovilbdv" printed in one word
                        app_phrases.append((("".join(tokens),), bank))
        self._apps = PhraseIndex(app_phrases, fuzzy_from=7)
        self._domains = {d.lower().strip("."): bank for bank in banks for d in bank.domains}
        suffix_phrases = [(tuple(t.norm for t in tokenize(s)), s) for s in legal_suffixes]
        self._suffixes = PhraseIndex([p for p in suffix_phrases if p[0]], fuzzy_from=7)

    # -- loading ---------------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "BankCatalog":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BankCatalogError(f"Cannot read bank catalog {path}: {exc}") from exc
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>") -> "BankCatalog":
        if not isinstance(data, dict) or not isinstance(data.get("banks"), list):
            raise BankCatalogError(f"{source}: expected an object with a 'banks' list")
        banks = []
        for index, entry in enumerate(data["banks"]):
            code, name = (entry or {}).get("code"), (entry or {}).get("name")
            if not (isinstance(code, str) and re.fullmatch(r"\d{4}", code) and isinstance(name, str) and name):
                raise BankCatalogError(f"{source}: bank #{index} needs a 4-digit 'code' and a 'name'")
            aliases = entry.get("aliases", [])
            if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
                raise BankCatalogError(f"{source}: bank {code} 'aliases' must be a list of strings")
            extra = {}
            for key in ("apps", "domains"):
                values = entry.get(key, [])
                if not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
                    raise BankCatalogError(f"{source}: bank {code} '{key}' must be a list of non-empty strings")
                extra[key] = tuple(values)
            if not all(_DOMAIN.fullmatch(d.lower()) for d in extra["domains"]):
                raise BankCatalogError(f"{source}: bank {code} 'domains' must be host names such as 'banco.com.ve'")
            banks.append(Bank(code, name, tuple(aliases), **extra))
        suffixes = data.get("legal_suffixes", [])
        if not isinstance(suffixes, list) or not all(isinstance(s, str) for s in suffixes):
            raise BankCatalogError(f"{source}: 'legal_suffixes' must be a list of strings")
        return cls(banks, tuple(suffixes))

    # -- lookups ---------------------------------------------------------------------------------
    def by_code(self, code: str | None) -> Bank | None:
        return self._by_code.get(code or "")

    def by_name(self, name: str | None) -> Bank | None:
        """The bank whose canonical name, alias or code is exactly `name` (folded)."""
        if not name:
            return None
        bank = self.by_code(name.strip())
        if bank:
            return bank
        matches = self.find(name)
        banks = {m.bank.code for m in matches}
        return matches[0].bank if len(banks) == 1 else None

    def find(self, text: str | None) -> list[BankMatch]:
        """Alias occurrences in `text`, left to right, longest alias first at each position."""
        if not text:
            return []
        tokens = tokenize(text[:2000])
        norms = [t.norm for t in tokens]
        found: list[BankMatch] = []
        index = 0
        while index < len(tokens):
            hits = self._aliases.match_at(norms, index)
            start = tokens[index].start
            if hits and norms[index].isdigit() and start > 0 and (text[start - 1].isalnum() or text[start - 1] in MASK_CHARS):
                hits = []  # "…100 Banco": digits glued to a masked number are not "100% Banco"
            if hits:
                hit = hits[0]
                last = tokens[index + hit.length - 1]
                found.append(BankMatch(hit.payload, tokens[index].start, last.end))  # type: ignore[arg-type]
                index += hit.length
            else:
                index += 1
        return found

    def find_apps(self, text: str | None) -> list[BankMatch]:
        """Occurrences of a bank's app name or signature ("Tpago", "pagomovilbdv") in `text`."""
        if not text:
            return []
        tokens = tokenize(text[:2000])
        norms = [t.norm for t in tokens]
        found = []
        for index in range(len(tokens)):
            hits = self._apps.match_at(norms, index)
            if hits:
                last = tokens[index + hits[0].length - 1]
                found.append(BankMatch(hits[0].payload, tokens[index].start, last.end))  # type: ignore[arg-type]
        return found

    def from_domain(self, text: str | None) -> BankMatch | None:
        """The bank whose online-banking domain is the host of a web address in `text`
        ("vol.venezolano.com/", "https://www.bancamiga.com/pagos"): the host must be the domain
        or end in "." + domain, so "venezolano.com.fake.net" is nobody's."""
        if not text:
            return None
        for match in _HOST.finditer(text[:500].lower()):
            host = match.group("host").strip(".")
            labels = host.split(".")
            for cut in range(len(labels) - 1):
                bank = self._domains.get(".".join(labels[cut:]))
                if bank:
                    return BankMatch(bank, match.start("host"), match.end("host"))
        return None

    def code_in(self, text: str | None) -> Bank | None:
        """The bank of a code printed as "0105 - BANCO MERCANTIL" or "(0102)"; None otherwise."""
        if not text:
            return None
        match = _LEADING_CODE.match(text) or _BRACKETED_CODE.search(text)
        return self.by_code("0" + match.group(1)[1:]) if match else None

    def resolve(self, text: str | None) -> tuple[Bank | None, str | None]:
        """The one bank a value names, or (None, reason) when there is none or several."""
        if not text or not text.strip():
            return None, "texto vacío"
        coded = self.code_in(text)
        named = {m.bank.code: m.bank for m in self.find(text)}
        if coded and named and coded.code not in named:
            return None, f"código {coded.code} y nombre {', '.join(sorted(named))} no coinciden"
        if coded:
            return coded, None
        if len(named) == 1:
            return next(iter(named.values())), None
        if len(named) > 1:
            return None, "varios bancos en el mismo valor: " + ", ".join(sorted(named))
        return None, "banco no reconocido en el catálogo"

    def from_account(self, text: str | None) -> Bank | None:
        """The bank of an account from its code prefix ("0102****4821") or a bank name beside it."""
        if not text:
            return None
        match = _ACCOUNT_PREFIX.match(text)
        if match and self.by_code(match.group(1)):
            return self.by_code(match.group(1))
        named = {m.bank.code: m.bank for m in self.find(text)}
        return next(iter(named.values())) if len(named) == 1 else None

    def strip_bank_names(self, text: str) -> str:
        """`text` without bank codes, aliases and the legal suffixes that follow them."""
        spans = []
        for match in self.find(text):
            end = match.end
            while True:  # "Banco Mercantil, C.A. S.A.C.A. Banco Universal"
                rest_tokens = tokenize(text[end:end + 80])
                hits = self._suffixes.match_at([t.norm for t in rest_tokens], 0) if rest_tokens else []
                gap = text[end:end + rest_tokens[0].start] if rest_tokens else ""
                if not hits or gap.strip(" ,.-") != "":
                    break
                end += rest_tokens[hits[0].length - 1].end
                while end < len(text) and text[end] == ".":
                    end += 1
            spans.append((match.start, end))
        out, cursor = [], 0
        for start, end in spans:
            out.append(text[cursor:start])
            cursor = end
        out.append(text[cursor:])
        cleaned = " ".join(out)
        cleaned = re.sub(r"(?<!\d)01\d{2}(?!\d)", " ", cleaned)
        return cleaned


_cache: dict[tuple[str, float], BankCatalog] = {}
_cache_lock = threading.Lock()


def get_catalog(path: str | os.PathLike | None = None) -> BankCatalog:
    """The catalog at `path` (config.BANKS_PATH by default), reloaded when the file changes."""
    if path is None:
        import config

        path = config.BANKS_PATH
    resolved = str(Path(path).resolve())
    try:
        mtime = os.stat(resolved).st_mtime
    except OSError as exc:
        raise BankCatalogError(f"Cannot read bank catalog {resolved}: {exc}") from exc
    key = (resolved, mtime)
    with _cache_lock:
        catalog = _cache.get(key)
        if catalog is None:
            catalog = BankCatalog.from_file(resolved)
            for old in [k for k in _cache if k[0] == resolved]:
                del _cache[old]
            _cache[key] = catalog
        return catalog

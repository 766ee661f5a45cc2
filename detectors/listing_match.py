"""Brand matching for marketplace listings: names, protected terms, price, images, shops.

Pure scoring code (no Flask, database or Redis). A :class:`ListingMatcher` is compiled
once from a :class:`BrandRegistry` (brands with aliases, protected terms, reference
prices per category, registered perceptual image hashes and authorised shops) and then
matches one listing in tens of microseconds; it holds no mutable state, so one instance
is shared by every thread.

Text matching
-------------
Counterfeiters write brand names so that a plain keyword filter misses them: ``N1KE``,
``G u c c i``, ``g.u.c.c.i``, ``ɢucci`` (a small-capital G), ``Аdidas`` (a Cyrillic A),
``Gucci`` in full-width letters, ``Guccí``, ``Guchi``. Both the text and every alias are
reduced to the same *skeleton* tokens:

1. NFKC (full-width and compatibility forms), casefold, accents dropped (NFKD minus
   combining marks);
2. lookalike letters mapped to the Latin letter they imitate (Cyrillic, Greek, small
   capitals, a few IPA letters), in the spirit of Unicode TR39 confusables;
3. split on anything that is not a letter, digit or one of ``@$!|``; in a token that
   also holds a letter, digits and those symbols stand for letters (``0→o 1→i 3→e 4→a
   5→s 7→t 8→b @→a $→s !→i |→i``) -- a token of digits only (``350``, ``8053``) is
   left alone, so prices and sizes never turn into words;
4. ``l`` and ``i`` share one skeleton letter (``i``): ``1`` may stand for either;
5. a run of three or more one-character tokens is joined (``g u c c i`` → ``gucci``).

A brand is named when a run of 1-3 adjacent skeleton tokens, concatenated, equals the
skeleton of an alias or protected term (``ni ke`` and ``louis vuitton`` both match), when
a token is an alias plus a plural ``s``, when a token contains an alias of 5+ letters
(``guccibag``), or -- aliases of 5+ letters only -- when a token is one or two edits from
it (rapidfuzz Levenshtein; 1 edit up to 7 letters, 2 from 8), has the same first letter
and is not one of the registry's ``ordinary_words`` (``channel`` is not Chanel, ``carrier``
is not Cartier). Four-letter aliases match exactly only: ``nice`` is not Nike, and
``nikon`` is not either. A match is *obfuscated* unless the alias appears as written
(case aside). Outside a brand's own categories only its name counts, and only when it is
not an ordinary word (``ambiguous``: Apple, Hermès): "Daytona Beach T-shirt" does not name
Rolex, "apple cider vinegar" does not name Apple, "Rolex Daytona" in any category does.

Around a match, the matcher records a qualifier (``Adidas-style``, ``Gucci inspired``,
``replica Rolex``, ``dupe``; ``style``/``type`` only right after the brand, so "Apple USB
type C" has none) and whether the brand is named for compatibility (``case for iPhone``,
``compatible with Dyson``): the first is a strong counterfeit signal, the second is the
nominative use that accessory makers are allowed.

Price, images, shops
--------------------
``price_ratio`` is the listing price, converted to the registry's reference currency,
divided by the brand's reference price in the listing's category (``None`` when either is
unknown). ``image_distance`` is the smallest Hamming distance between a listing image hash
and any registered image hash of the same size, in the hex format of the ``imagehash``
library (``str(imagehash.phash(img))``, read back with ``imagehash.hex_to_hash``); the
brand of that image is ``image_brand``. ``shop_authorised`` tells whether the shop is on
the authorised list of the matched brand (or, with no brand in the text, of the image's
brand).
"""

# ruff: noqa: RUF001, RUF002, RUF003 - the lookalike letters in the tables and examples are the point
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import imagehash
from rapidfuzz.distance import Levenshtein

__all__ = [
    "Brand",
    "BrandRegistry",
    "ListingMatch",
    "ListingMatcher",
    "hamming_hex",
    "skeleton_tokens",
]

# -- normalisation ------------------------------------------------------------------------

# Lookalikes of Latin letters after NFKC + casefold. Cyrillic and Greek letters whose
# lowercase (or uppercase, for н/в/т/к/м) form passes for a Latin one, Latin small capitals
# and IPA letters that NFKC leaves alone.
_HOMOGLYPHS: Final = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "з": "3", "и": "u", "й": "u", "к": "k",
    "м": "m", "н": "h", "о": "o", "п": "n", "р": "p", "с": "c", "т": "t", "у": "y",
    "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d", "ԍ": "g", "һ": "h",
    "ԛ": "q", "ԝ": "w", "ү": "y", "ӏ": "l", "ь": "b", "ы": "bi", "г": "r", "д": "d",
    # Greek
    "α": "a", "β": "b", "γ": "y", "δ": "d", "ε": "e", "ζ": "z", "η": "n", "ι": "i",
    "κ": "k", "μ": "u", "ν": "v", "ο": "o", "ρ": "p", "σ": "o", "ς": "c", "τ": "t",
    "υ": "u", "χ": "x", "ω": "w", "ϲ": "c", "ϳ": "j",
    # Latin small capitals and IPA letters (NFKC keeps them)
    "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ꜰ": "f", "ɢ": "g", "ʜ": "h",
    "ɪ": "i", "ᴊ": "j", "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p",
    "ʀ": "r", "ꜱ": "s", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ʏ": "y", "ᴢ": "z",
    "ɑ": "a", "ɡ": "g", "ı": "i", "ȷ": "j", "ɩ": "i", "ɵ": "o", "ƅ": "b", "ß": "ss",
    "ø": "o", "đ": "d", "ħ": "h", "ł": "l", "œ": "oe", "æ": "ae",
}  # fmt: skip
# Capitals whose lowercase looks different (Greek Ν/ν, Cyrillic Н/н): mapped before casefold.
_UPPER: Final = str.maketrans(
    {
        "Α": "a", "Β": "b", "Ε": "e", "Ζ": "z", "Η": "h", "Ι": "i", "Κ": "k", "Μ": "m", "Ν": "n",
        "Ο": "o", "Ρ": "p", "Τ": "t", "Υ": "y", "Χ": "x", "А": "a", "В": "b", "Е": "e", "К": "k",
        "М": "m", "Н": "h", "О": "o", "Р": "p", "С": "c", "Т": "t", "У": "y", "Х": "x", "Ѕ": "s",
        "І": "i", "Ј": "j",
    }
)  # fmt: skip
_SKELETON: Final = str.maketrans({**{k: v.replace("l", "i") for k, v in _HOMOGLYPHS.items()}, "l": "i"})
# Digits and symbols standing for letters, applied only inside tokens that hold a letter.
_LEET: Final = str.maketrans(
    {
        "0": "o",
        "1": "i",
        "3": "e",
        "4": "a",
        "5": "s",
        "7": "t",
        "8": "b",
        "@": "a",
        "$": "s",
        "!": "i",
        "|": "i",
    }
)
_COMBINING: Final = re.compile(r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+")
_TOKEN: Final = re.compile(r"[^\W_]+|[@$!|]+")  # letters/digits, or a run of leet symbols
_PIECE: Final = re.compile(r"(?:[^\W_]|[@$!|])+")  # a token as written, leet symbols included
_HAS_LETTER: Final = re.compile(r"[^\W\d_]")
_PLAIN: Final = re.compile(r"[^\W_]+")

# After the brand ("Adidas-style", "Gucci inspired", "Rolex homage", "Nike type")...
QUALIFIERS_AFTER: Final = frozenset(
    {
        "style", "styled", "inspired", "type", "replica", "replicas", "rep", "reps", "dupe",
        "dupes", "lookalike", "alike", "homage", "imitation", "copy", "fake", "clone", "knockoff",
    }
)  # fmt: skip
# ...and before it ("inspired by Gucci", "replica Rolex", "AAA Louis Vuitton").
QUALIFIERS_BEFORE: Final = frozenset(
    {
        "inspired", "replica", "replicas", "rep", "reps", "dupe", "dupes", "lookalike", "homage",
        "imitation", "fake", "clone", "knockoff", "aaa", "unbranded",
    }
)  # fmt: skip
COMPATIBILITY: Final = frozenset({"for", "compatible", "fits", "fit", "replacement", "suits"})


def _fold(text: str) -> str:
    """NFKC, casefold, accents dropped."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    if folded.isascii():
        return folded
    return unicodedata.normalize("NFC", _COMBINING.sub("", unicodedata.normalize("NFKD", folded)))


def _leet(piece: str) -> str:
    """A token in skeleton letters → digits and symbols read as letters when it holds a
    letter, else its digits alone."""
    if piece.isalpha():  # the common case
        return piece
    if _HAS_LETTER.search(piece):
        return piece.translate(_LEET)
    return "".join(filter(str.isdigit, piece))


def _tokens(text: str) -> tuple[list[str], list[str]]:
    """(skeleton tokens, the same tokens as written after casefold), runs of single
    characters joined."""
    nfkc = unicodedata.normalize("NFKC", text)
    folded = nfkc.casefold()
    if folded.isascii():
        skeleton = folded.replace("l", "i")
    else:
        # The plain form keeps accents (so "guccí" is not plain "gucci"); the skeleton
        # drops them. Lookalikes map to letters, so both split into the same pieces.
        stripped = _COMBINING.sub("", unicodedata.normalize("NFKD", nfkc.translate(_UPPER).casefold()))
        skeleton = unicodedata.normalize("NFC", stripped).translate(_SKELETON)
    pieces = _PIECE.findall(skeleton)
    raw = _PIECE.findall(folded)
    if len(raw) != len(pieces):  # a mark NFKD split off that is not combining: be safe
        raw = pieces
    keys: list[str] = []
    plains: list[str] = []
    for piece, written in zip(pieces, raw, strict=True):
        key = _leet(piece)
        if key:
            keys.append(key)
            plains.append(written)
    # Join runs of 3+ single-character tokens: "g u c c i", "n.i.k.e".
    if not any(len(k) == 1 for k in keys):
        return keys, plains
    out_k: list[str] = []
    out_p: list[str] = []
    i, n = 0, len(keys)
    while i < n:
        j = i
        while j < n and len(keys[j]) == 1:
            j += 1
        if j - i >= 3:
            out_k.append("".join(keys[i:j]))
            out_p.append("\x00")  # never equal to a plain form: a spaced-out name is obfuscated
            i = j
        elif j > i:
            out_k.extend(keys[i:j])
            out_p.extend(plains[i:j])
            i = j
        else:
            out_k.append(keys[i])
            out_p.append(plains[i])
            i += 1
    return out_k, out_p


def skeleton_tokens(text: str) -> list[str]:
    """The skeleton tokens of ``text`` (see the module docstring)."""
    return _tokens(text)[0]


# The word lists in skeleton form (skeleton -> the word), as the text is compared in it.
_AFTER: Final = {skeleton_tokens(w)[0]: w for w in QUALIFIERS_AFTER}
_SKELETON_OF: Final = {w: k for k, w in _AFTER.items()}
_NEXT_ONLY: Final = frozenset({"type", "style", "styled"})  # right after the brand, or not at all
_BEFORE: Final = {skeleton_tokens(w)[0]: w for w in QUALIFIERS_BEFORE}
_COMPATIBLE: Final = frozenset(skeleton_tokens(w)[0] for w in COMPATIBILITY)


def _plain_forms(phrase: str) -> frozenset[str]:
    """How a phrase reads when written plainly: spaced and compact, with and without accents."""
    out = set()
    for variant in (unicodedata.normalize("NFKC", phrase).casefold(), _fold(phrase)):
        words = _PLAIN.findall(variant)
        out.add(" ".join(words))
        out.add("".join(words))
    return frozenset(out)


def hamming_hex(a: str, b: str) -> int:
    """Bits that differ between two equal-length hex hashes; equals ``hex_to_hash(a) -
    hex_to_hash(b)`` of the imagehash library."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


# -- the registry -------------------------------------------------------------------------


@dataclass(frozen=True)
class Brand:
    name: str
    aliases: tuple[str, ...] = ()
    protected_terms: tuple[str, ...] = ()
    categories: frozenset[str] = frozenset()
    ambiguous: bool = False  # the name is an ordinary word: only in its categories
    reference_prices: Mapping[str, float] = field(default_factory=dict)  # category -> price
    image_hashes: tuple[str, ...] = ()
    authorised_shops: frozenset[str] = frozenset()
    owner: str = ""


@dataclass(frozen=True)
class BrandRegistry:
    brands: tuple[Brand, ...]
    reference_currency: str = "USD"
    fx: Mapping[str, float] = field(default_factory=dict)  # currency -> reference units per unit
    ordinary_words: frozenset[str] = frozenset()
    version: str = ""


# -- matching -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    brand: int
    term: str  # "" for an alias, else the protected term as registered
    plain: frozenset[str]


@dataclass(frozen=True, slots=True)
class _Hit:
    brand: int
    term: str
    score: float
    obfuscated: bool
    in_title: bool
    start: int
    end: int  # token span in its field


@dataclass(frozen=True, slots=True)
class ListingMatch:
    brand: str = ""
    score: float = 0.0
    obfuscated: bool = False
    term: str = ""
    qualifier: str = ""
    compatibility: bool = False
    in_title: bool = False
    in_description: bool = False
    declared: bool = False  # the seller's declared brand is this registered brand
    brand_count: int = 0
    shop_authorised: bool = False
    reference_price: float | None = None
    price_ratio: float | None = None
    image_distance: int | None = None
    image_brand: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


NO_MATCH: Final = ListingMatch()


class ListingMatcher:
    """A registry compiled for matching; thread-safe, immutable after ``__init__``."""

    def __init__(self, registry: BrandRegistry, *, max_ngram: int = 3) -> None:
        self.registry = registry
        self.brands = registry.brands
        self.max_ngram = max_ngram
        self.ordinary = frozenset(_fold(w).translate(_SKELETON) for w in registry.ordinary_words)
        exact: dict[str, list[_Entry]] = {}
        longest = 1
        for b, brand in enumerate(self.brands):
            for phrase, term in [(a, "") for a in (brand.name, *brand.aliases)] + [
                (t, t) for t in brand.protected_terms
            ]:
                toks = skeleton_tokens(phrase)
                if not toks:
                    raise ValueError(f"{brand.name}: {phrase!r} has no letters or digits")
                longest = max(longest, len(toks))
                entries = exact.setdefault("".join(toks), [])
                if not any(e.brand == b and e.term == term for e in entries):
                    entries.append(_Entry(b, term, _plain_forms(phrase)))
        self.max_ngram = max(max_ngram, longest)
        self._exact = {k: tuple(v) for k, v in exact.items()}
        # Aliases of 5+ skeleton letters: fuzzy and substring matching.
        longs = sorted({k for k, v in exact.items() if len(k) >= 5 and any(not e.term for e in v)})
        self._fuzzy_keys = longs
        self._fuzzy_lengths = (min(map(len, longs)) - 2, max(map(len, longs)) + 2) if longs else (0, -1)
        # A typo keeps the first letter: only the aliases sharing it are compared.
        by_initial: dict[str, list[tuple[str, int]]] = {}
        for k in longs:
            by_initial.setdefault(k[0], []).append((k, 1 if len(k) < 8 else 2))
        self._by_initial = {c: tuple(v) for c, v in by_initial.items()}
        # Every prefix of a key: an n-gram starting with a token that is none cannot match.
        self._prefixes = frozenset(k[:j] for k in exact for j in range(1, len(k) + 1))
        # Glued to another word ("guccibag"): not for ordinary-word names ("pineapple").
        glued = [k for k in longs if any(not e.term and not self.brands[e.brand].ambiguous for e in exact[k])]
        self._contains = (
            re.compile("|".join(re.escape(k) for k in sorted(glued, key=len, reverse=True)))
            if glued
            else None
        )
        # A declared brand (the event's ``brand`` field) is looked up by its skeleton.
        self._declared = {
            k: next(e.brand for e in v if not e.term) for k, v in exact.items() if any(not e.term for e in v)
        }
        images: dict[int, list[tuple[int, int]]] = {}
        for b, brand in enumerate(self.brands):
            for h in brand.image_hashes:
                imagehash.hex_to_hash(h)  # the format check: raises on non-hex
                images.setdefault(len(h), []).append((int(h, 16), b))
        self._images = {n: tuple(v) for n, v in images.items()}
        self._fx = {c.upper(): float(r) for c, r in registry.fx.items()}
        self._fx[registry.reference_currency.upper()] = 1.0

    # -- text ---------------------------------------------------------------------------
    def _scan(self, text: str, in_title: bool, category: str) -> tuple[list[_Hit], list[str]]:
        keys, plains = _tokens(text)
        hits: list[_Hit] = []
        n = len(keys)
        exact = self._exact
        prefixes = self._prefixes
        covered = [False] * n
        for i, first in enumerate(keys):
            if first not in prefixes:
                if len(first) > 3 and first[-1] == "s" and first[:-1] in exact:  # a plural
                    self._exact_hits(hits, exact[first[:-1]], plains[i][:-1], in_title, i, 1)
                    covered[i] = True
                continue
            key = first
            for size in range(1, min(self.max_ngram, n - i) + 1):
                if size > 1:
                    key += keys[i + size - 1]
                    if key not in prefixes:
                        break
                entries = exact.get(key)
                if entries is not None:
                    # Plain: written as registered ("ray ban", "rayban"), not "ni ke" or "n1ke".
                    self._exact_hits(hits, entries, " ".join(plains[i : i + size]), in_title, i, size)
                    for k in range(i, i + size):
                        covered[k] = True
        contains = self._contains
        if contains is not None and not contains.search(" ".join(keys)):
            contains = None  # the common case: no alias anywhere, not even glued to a word
        lo, hi = self._fuzzy_lengths
        by_initial = self._by_initial
        for i, key in enumerate(keys):
            if covered[i] or not lo <= len(key) <= hi or len(key) < 5:
                continue
            if contains is not None:
                m = contains.search(key)
                if m is not None:
                    for e in exact[m.group()]:
                        if not e.term:
                            plain = any(p and p in plains[i] for p in e.plain)
                            hits.append(_Hit(e.brand, "", 90.0, not plain, in_title, i, i + 1))
                    continue
            candidates = by_initial.get(key[0])
            if candidates is None or key in self.ordinary:
                continue
            for alias, most in candidates:
                if abs(len(alias) - len(key)) > most:
                    continue
                dist = Levenshtein.distance(key, alias, score_cutoff=most)
                if dist > most:
                    continue
                score = round(100.0 * (1.0 - dist / max(len(alias), len(key))), 1)
                for e in exact[alias]:
                    if not e.term:
                        hits.append(_Hit(e.brand, "", score, True, in_title, i, i + 1))
        if hits:
            hits = [h for h in hits if self._counts(h, hits, category)]
        return hits, keys

    @staticmethod
    def _exact_hits(
        hits: list[_Hit], entries: Sequence[_Entry], written: str, in_title: bool, i: int, size: int
    ) -> None:
        for e in entries:
            plain = written in e.plain
            hits.append(_Hit(e.brand, e.term, 100.0 if plain else 95.0, not plain, in_title, i, i + size))

    def _counts(self, hit: _Hit, hits: Sequence[_Hit], category: str) -> bool:
        """In the brand's categories every hit counts; outside them only its name, and
        only when the name is not an ordinary word -- then its protected terms count too."""
        brand = self.brands[hit.brand]
        if not brand.categories or category in brand.categories:
            return True
        if brand.ambiguous:
            return False
        return not hit.term or any(h.brand == hit.brand and not h.term for h in hits)

    @staticmethod
    def _around(keys: Sequence[str], hit: _Hit) -> tuple[str, bool]:
        after = next((_AFTER[k] for k in keys[hit.end : hit.end + 2] if k in _AFTER), "")
        if after in _NEXT_ONLY and keys[hit.end] != _SKELETON_OF[after]:
            after = ""  # "Apple USB type C": "type" belongs to "USB", not to the brand
        window = reversed(keys[max(0, hit.start - 3) : hit.start])
        before = next((_BEFORE[k] for k in window if k in _BEFORE), "")
        compatible = any(k in _COMPATIBLE for k in keys[max(0, hit.start - 2) : hit.start])
        return after or before, compatible

    # -- the listing --------------------------------------------------------------------
    def match(
        self,
        *,
        title: str,
        description: str = "",
        brand: str | None = None,
        category: str = "",
        price: float | None = None,
        currency: str = "",
        image_hashes: Iterable[str] = (),
        shop_id: str = "",
    ) -> ListingMatch:
        t_hits, t_keys = self._scan(title, True, category)
        d_hits, d_keys = self._scan(description, False, category) if description else ([], [])
        declared = None
        if brand:
            declared = self._declared.get("".join(skeleton_tokens(brand)))
        image_distance, image_brand = self._nearest_image(image_hashes)
        if not t_hits and not d_hits and declared is None:
            if image_distance is None:
                return NO_MATCH
            ib = self.brands[image_brand] if image_brand is not None else None
            return ListingMatch(
                shop_authorised=ib is not None and shop_id in ib.authorised_shops,
                image_distance=image_distance,
                image_brand=ib.name if ib is not None else "",
            )
        # The brand: the highest score, the title before the description, the declared
        # brand on a tie; protected terms count for their brand.
        best: dict[int, float] = {}
        for h in (*t_hits, *d_hits):
            best[h.brand] = max(best.get(h.brand, 0.0), h.score + (0.5 if h.in_title else 0.0))
        if declared is not None:
            best[declared] = max(best.get(declared, 0.0), 100.25)
        chosen = max(best, key=lambda b: (best[b], b == declared, -b))
        mine_t = [h for h in t_hits if h.brand == chosen]
        mine_d = [h for h in d_hits if h.brand == chosen]
        qualifier, compatible = "", False
        for keys, hits in ((t_keys, mine_t), (d_keys, mine_d)):
            for h in hits:
                q, c = self._around(keys, h)
                qualifier = qualifier or q
                compatible = compatible or c
        mine = mine_t + mine_d
        score = max((h.score for h in mine), default=100.0 if declared == chosen else 0.0)
        b = self.brands[chosen]
        ref = b.reference_prices.get(category)
        ratio = None
        if ref and price is not None:
            rate = self._fx.get(currency.upper())
            if rate is not None:
                ratio = round(price * rate / ref, 4)
        return ListingMatch(
            brand=b.name,
            score=score,
            obfuscated=any(h.obfuscated for h in mine),
            term=next((h.term for h in mine if h.term), ""),
            qualifier=qualifier,
            compatibility=compatible,
            in_title=bool(mine_t),
            in_description=bool(mine_d),
            declared=declared == chosen,
            brand_count=len(best),
            shop_authorised=shop_id in b.authorised_shops,
            reference_price=ref,
            price_ratio=ratio,
            image_distance=image_distance,
            image_brand=self.brands[image_brand].name if image_brand is not None else "",
        )

    def _nearest_image(self, hashes: Iterable[str]) -> tuple[int | None, int | None]:
        best: int | None = None
        brand: int | None = None
        for h in hashes:
            registered = self._images.get(len(h))
            if not registered:
                continue
            try:
                value = int(h, 16)
            except ValueError:
                continue
            for ref, b in registered:
                d = (value ^ ref).bit_count()
                if best is None or d < best:
                    best, brand = d, b
        return best, brand

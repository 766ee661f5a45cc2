"""The brand registry: which brands are protected, how they are written, what they cost,
what their registered images look like and which shops may sell them.

It is a YAML file (``RISKCTL_BRAND_REGISTRY``; by default the fixture
``fixtures/brand_registry.yaml``), validated strictly when loaded -- an unknown key, a
malformed image hash or a negative price fails with a :class:`ConfigError` naming it --
and compiled once into a :class:`~detectors.listing_match.ListingMatcher`.
:class:`RegistryHolder` gives every worker the current matcher and reloads it within a
second of an edit; a broken edit is logged and the previous registry keeps serving.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from detectors.listing_match import Brand, BrandRegistry, ListingMatcher
from riskctl.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_REGISTRY = Path(__file__).resolve().parent.parent / "fixtures" / "brand_registry.yaml"

Phrase = Annotated[str, Field(min_length=2, max_length=100)]
# imagehash writes hash_size**2 bits as hex: 16 chars for the default 8x8 hash, 64 for 16x16.
ImageHex = Annotated[str, Field(pattern=r"^[0-9a-f]{16,256}$")]
ShopId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/+=-]*$")]
Price = Annotated[float, Field(gt=0, le=1e9)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BrandModel(_Model):
    name: Phrase
    owner: str = ""
    aliases: list[Phrase] = Field(default_factory=list)
    protected_terms: list[Phrase] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    ambiguous: bool = False
    reference_prices: dict[str, Price] = Field(default_factory=dict)
    image_hashes: list[ImageHex] = Field(default_factory=list)
    authorised_shops: list[ShopId] = Field(default_factory=list)


class RegistryModel(_Model):
    version: int = 1
    reference_currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    fx: dict[Annotated[str, Field(pattern=r"^[A-Z]{3}$")], Price] = Field(default_factory=dict)
    ordinary_words: list[str] = Field(default_factory=list)
    brands: list[BrandModel] = Field(min_length=1)


def parse_registry(data: Any, *, source: str = "<registry>", version: str = "") -> BrandRegistry:
    """A registry from parsed YAML; :class:`ConfigError` naming every bad field."""
    try:
        model = RegistryModel.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise ConfigError(f"{source}: {problems}") from None
    names = [b.name.casefold() for b in model.brands]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{source}: brands declared twice: {dupes}")
    return BrandRegistry(
        brands=tuple(
            Brand(
                name=b.name,
                aliases=tuple(b.aliases),
                protected_terms=tuple(b.protected_terms),
                categories=frozenset(b.categories),
                ambiguous=b.ambiguous,
                reference_prices=dict(b.reference_prices),
                image_hashes=tuple(b.image_hashes),
                authorised_shops=frozenset(b.authorised_shops),
                owner=b.owner,
            )
            for b in model.brands
        ),
        reference_currency=model.reference_currency,
        fx=dict(model.fx),
        ordinary_words=frozenset(model.ordinary_words),
        version=version,
    )


def load_registry(path: Path | str) -> BrandRegistry:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"brand registry {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"brand registry {path}: not valid YAML: {exc}") from None
    return parse_registry(data, source=str(path), version=hashlib.sha256(raw).hexdigest()[:16])


def compile_registry(path: Path | str) -> ListingMatcher:
    """Load and compile; every problem (including an unreadable alias) is a ConfigError."""
    registry = load_registry(path)
    try:
        return ListingMatcher(registry)
    except ValueError as exc:
        raise ConfigError(f"brand registry {path}: {exc}") from None


class RegistryHolder:
    """The compiled registry in force; an edited file is picked up within ``interval_s``."""

    def __init__(self, path: Path | str, interval_s: float = 1.0) -> None:
        self.path = Path(path)
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._signature = self._sig()
        self._matcher = compile_registry(self.path)  # a broken registry at start-up is fatal
        self._next_check = time.monotonic() + interval_s
        self.last_error: str | None = None

    def _sig(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    @property
    def current(self) -> ListingMatcher:
        self.maybe_reload()
        return self._matcher

    @property
    def version(self) -> str:
        return self._matcher.registry.version

    def maybe_reload(self) -> bool:
        now = time.monotonic()
        if now < self._next_check or not self._lock.acquire(blocking=False):
            return False
        try:
            self._next_check = now + self.interval_s
            sig = self._sig()
            if sig == self._signature or sig is None:
                return False
            self._signature = sig
            try:
                self._matcher = compile_registry(self.path)
            except ConfigError as exc:
                self.last_error = str(exc)
                log.error("brand registry not reloaded, the previous one keeps serving: %s", exc)
                return False
            self.last_error = None
            log.info("brand registry %s is live", self.version)
            return True
        finally:
            self._lock.release()

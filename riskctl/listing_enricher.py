"""Brand-matching features of a listing, added to the check in-process (no I/O).

:class:`ListingEnricher` is a :class:`~riskctl.checks.Enricher`: the check path calls it for
``listing`` events with the event alone and merges :data:`LISTING_SCHEMA`'s features into
the static ones, before velocity, rules and detectors. The registry it matches against is
the one in force in :class:`~riskctl.brand_registry.RegistryHolder` (hot-reloaded).

A matcher failure never fails the check: the features come back unavailable (``None``),
rules that read them through ``coalesce`` stay quiet, and the error is logged.
"""

from __future__ import annotations

import logging
from typing import Any

from detectors.listing_match import ListingMatch, ListingMatcher
from riskctl.brand_registry import RegistryHolder
from riskctl.events import BaseEvent, ListingEvent
from riskctl.features import FeatureSpec, FeatureType

log = logging.getLogger(__name__)

_LISTING = frozenset({"listing"})
F, INT, B, S = FeatureType.FLOAT, FeatureType.INT, FeatureType.BOOL, FeatureType.STR

LISTING_SCHEMA: tuple[FeatureSpec, ...] = (
    FeatureSpec(
        "listing.brand_match", S, "registered brand named in the listing (empty when none)", _LISTING
    ),
    FeatureSpec(
        "listing.brand_match_score", F, "0-100: 100 as written, 95 obfuscated, less for typos", _LISTING
    ),
    FeatureSpec(
        "listing.brand_obfuscated", B, "the brand is disguised: N1KE, G u c c i, homoglyphs, typos", _LISTING
    ),
    FeatureSpec("listing.brand_term", S, "protected product name matched (Air Jordan, Birkin...)", _LISTING),
    FeatureSpec("listing.brand_qualifier", S, "style/inspired/type/replica/dupe next to the brand", _LISTING),
    FeatureSpec("listing.brand_compatibility", B, "named for compatibility: 'case for iPhone'", _LISTING),
    FeatureSpec("listing.brand_in_title", B, "the brand is named in the title", _LISTING),
    FeatureSpec("listing.brand_in_description", B, "the brand is named in the description", _LISTING),
    FeatureSpec("listing.brand_declared", B, "the declared brand field is this registered brand", _LISTING),
    FeatureSpec("listing.brand_count", INT, "distinct registered brands named", _LISTING),
    FeatureSpec(
        "listing.shop_authorised", B, "the shop is authorised for the matched (or image) brand", _LISTING
    ),
    FeatureSpec("listing.reference_price", F, "the brand's reference price in this category", _LISTING),
    FeatureSpec("listing.price_ratio", F, "price / reference price (null when unknown)", _LISTING),
    FeatureSpec(
        "listing.image_distance", INT, "min Hamming distance to a registered image (null: none)", _LISTING
    ),
    FeatureSpec("listing.image_brand", S, "brand of the nearest registered image", _LISTING),
)

_FIELDS = {
    "listing.brand_match": "brand",
    "listing.brand_match_score": "score",
    "listing.brand_obfuscated": "obfuscated",
    "listing.brand_term": "term",
    "listing.brand_qualifier": "qualifier",
    "listing.brand_compatibility": "compatibility",
    "listing.brand_in_title": "in_title",
    "listing.brand_in_description": "in_description",
    "listing.brand_declared": "declared",
    "listing.brand_count": "brand_count",
    "listing.shop_authorised": "shop_authorised",
    "listing.reference_price": "reference_price",
    "listing.price_ratio": "price_ratio",
    "listing.image_distance": "image_distance",
    "listing.image_brand": "image_brand",
}
assert set(_FIELDS) == {s.name for s in LISTING_SCHEMA}
_UNAVAILABLE: dict[str, Any] = dict.fromkeys(_FIELDS)


def match_listing(matcher: ListingMatcher, event: ListingEvent) -> ListingMatch:
    return matcher.match(
        title=event.title,
        description=event.description,
        brand=event.brand,
        category=event.category,
        price=event.price,
        currency=event.currency,
        image_hashes=event.image_hashes,
        shop_id=event.shop_id,
    )


def as_features(m: ListingMatch) -> dict[str, Any]:
    return {name: getattr(m, attr) for name, attr in _FIELDS.items()}


class ListingEnricher:
    kinds = _LISTING

    def __init__(self, registry: RegistryHolder) -> None:
        self.registry = registry

    def features(self, event: BaseEvent) -> dict[str, Any]:
        if not isinstance(event, ListingEvent):
            return {}
        try:
            return as_features(match_listing(self.registry.current, event))
        except Exception:  # a matcher bug must not fail the check: features unavailable
            log.exception("brand matching failed for listing %s", event.listing_id)
            return dict(_UNAVAILABLE)

# ruff: noqa: RUF001 - lookalike letters are what these tests are about
"""Brand matching: obfuscations caught, ordinary words left alone, price, images, shops."""

from __future__ import annotations

import random
from pathlib import Path

import imagehash
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors.listing_match import BrandRegistry, ListingMatcher, hamming_hex, skeleton_tokens
from riskctl.brand_registry import (
    DEFAULT_REGISTRY,
    RegistryHolder,
    compile_registry,
    load_registry,
    parse_registry,
)
from riskctl.errors import ConfigError


@pytest.fixture(scope="module")
def matcher() -> ListingMatcher:
    return compile_registry(DEFAULT_REGISTRY)


def match(m: ListingMatcher, title: str, category: str = "shoes", **kw):
    return m.match(title=title, category=category, **kw)


# (title, category, brand, obfuscated)
CAUGHT = [
    ("Nike Air running shoes", "shoes", "Nike", False),
    ("N1KE Air sneakers", "shoes", "Nike", True),
    ("n!ke trainers", "shoes", "Nike", True),
    ("N.I.K.E trainers", "shoes", "Nike", True),
    ("Ni ke trainers", "shoes", "Nike", True),
    ("ΝΙΚΕ trainers (Greek capitals)", "shoes", "Nike", True),
    ("Nikes for kids", "shoes", "Nike", False),
    ("G u c c i bag", "bags", "Gucci", True),
    ("g.u.c.c.i bag", "bags", "Gucci", True),
    ("G-U-C-C-I bag", "bags", "Gucci", True),
    ("ɢucci belt (small-capital G)", "accessories", "Gucci", True),
    ("Gսcci belt (Armenian u, not in the map: one edit)", "accessories", "Gucci", True),
    ("Guccí wallet", "accessories", "Gucci", True),
    ("Guchi handbag", "bags", "Gucci", True),
    ("GUCC1 handbag", "bags", "Gucci", True),
    ("guccibag deal", "bags", "Gucci", False),
    ("ＧＵＣＣＩ wallet (full width)", "accessories", "Gucci", False),
    ("Adidas-style trainers", "shoes", "Adidas", False),
    ("Аdidas Superstar (Cyrillic A)", "shoes", "Adidas", True),
    ("4d1d4s superstar", "shoes", "Adidas", True),
    ("Louis-Vuitton Neverfull", "bags", "Louis Vuitton", False),
    ("LouisVuitton tote", "bags", "Louis Vuitton", False),
    ("louis vuiton tote", "bags", "Louis Vuitton", True),
    ("R0L3X Submariner", "watches", "Rolex", True),
    ("Rolex Daytona 116500", "watches", "Rolex", False),
    ("Ray-Ban Wayfarer", "eyewear", "Ray-Ban", False),
    ("RayBan aviators", "eyewear", "Ray-Ban", False),
    ("A1r J0rdan 1 retro", "shoes", "Nike", True),
    ("Chanel flap bag", "bags", "Chanel", False),
    ("Cartiier love bracelet", "jewelry", "Cartier", True),
    ("Nike socks", "toys", "Nike", False),  # a non-ambiguous name counts in any category
]


@pytest.mark.parametrize(("title", "category", "brand", "obfuscated"), CAUGHT)
def test_obfuscated_brand_names_are_caught(matcher, title, category, brand, obfuscated):
    m = match(matcher, title, category)
    assert m.brand == brand
    if brand:
        assert m.obfuscated is obfuscated
        assert m.in_title and not m.in_description


NOT_BRANDS = [
    ("nice shoes", "shoes"),
    ("nikon camera lens", "electronics"),
    ("Nikkei index poster", "home"),
    ("mini keyboard", "electronics"),
    ("TV channel remote", "electronics"),
    ("Carrier bag, reusable", "bags"),
    ("Carter family cookbook", "books"),
    ("Apple cider vinegar", "grocery"),
    ("pineapple phone stand", "phones"),
    ("Hermes parcel box", "home"),
    ("Daytona Beach T-shirt", "apparel"),
    ("Rocky IV poster", "home"),
    ("8053 speaker", "electronics"),
    ("roles and responsibilities", "books"),
    ("Prado museum guide", "books"),
    ("Leather wallet, brown, 6 card slots", "accessories"),
    ("Handmade ceramic mug no. 350", "home"),
    ("Running shoes for men, breathable mesh", "shoes"),
    ("Sunglasses, polarised, UV400", "eyewear"),
    ("Stainless steel watch, 40 mm, sapphire glass", "watches"),
]


@pytest.mark.parametrize(("title", "category"), NOT_BRANDS)
def test_ordinary_words_are_not_brands(matcher, title, category):
    assert match(matcher, title, category).brand == ""


_WORDS = """
    the and for with new used original quality fast shipping free gift box bag bags shoe shoes
    shirt dress jacket coat hoodie sweater jeans pants shorts skirt sock socks hat cap scarf glove
    belt wallet purse watch watches ring necklace bracelet earring earrings sunglasses glasses
    phone case cover charger cable cord adapter speaker headphones earbuds laptop tablet keyboard
    mouse monitor camera lens tripod battery light lamp chair table sofa desk shelf mirror rug
    pillow blanket towel mug cup plate bowl knife fork spoon pan pot kettle toaster blender mixer
    vacuum cleaner dryer iron fan heater cooler bottle jar candle vase frame clock plant seed tool
    drill saw hammer screw nail paint brush pencil pen paper notebook book novel toy doll puzzle
    game ball bike helmet tent rope lock key chain nice nike like bike hike mike niche night nickel
    niece nine nail nile noise nick kite mini mine miner minor panda pride prize prado proud prime
    rolled roller rollers rolls roles rules royal river rover gucci guide guild guilt gusto gutter
    guest guess gourd channel chapel chance change charge charm chart cheap check chain chanted
    carter carrier cartel cartoon carton career carpet carrot ample apply apples maple staple
    herpes heroes hermit herbs herbal dyes dye dyson tyson bison design dessert desert vintage
    retro classic style modern premium luxury genuine leather cotton wool silk linen denim suede
"""
COMMON_WORDS = tuple(_WORDS.split())


def test_common_marketplace_words_match_no_brand(matcher):
    """A floor on false hits: everyday listing words alone, in their likeliest category."""
    hits = {}
    for word in COMMON_WORDS:
        for category in ("shoes", "bags", "watches", "phones", "apparel", "home"):
            m = match(matcher, f"{word} {word}s", category)
            if m.brand and word not in {"nike", "gucci", "dyson", "apples"}:  # names, not words
                hits[(word, category)] = m.brand
    assert hits == {}


def test_qualifiers_and_compatibility(matcher):
    assert match(matcher, "Adidas-style trainers").qualifier == "style"
    assert match(matcher, "Gucci inspired belt", "accessories").qualifier == "inspired"
    assert match(matcher, "inspired by Hermes Birkin", "bags").qualifier == "inspired"
    assert match(matcher, "replica Rolex Submariner", "watches").qualifier == "replica"
    assert match(matcher, "Nike type running shoe").qualifier == "type"
    assert match(matcher, "Type-C cable", "electronics").qualifier == ""
    assert match(matcher, "Apple USB type C charger", "electronics").qualifier == ""
    assert match(matcher, "Submariner-style diver watch", "watches").qualifier == "style"
    plain = match(matcher, "Nike Air Max 90")
    assert plain.qualifier == "" and not plain.compatibility
    case = match(matcher, "Silicone case for iPhone 15", "phones")
    assert case.brand == "Apple" and case.term == "iphone" and case.compatibility
    filt = match(matcher, "Filter compatible with Dyson V15 Detect", "appliances")
    assert filt.brand == "Dyson" and filt.compatibility


def test_ambiguous_names_count_only_in_their_categories(matcher):
    assert match(matcher, "Apple MacBook Air 13", "computers").brand == "Apple"
    assert match(matcher, "Apple pie dish", "home").brand == ""
    assert match(matcher, "Apple watch strap", "watches").brand == "Apple"
    # a protected term outside the brand's categories counts only next to a plain name
    assert match(matcher, "Daytona Beach hoodie", "apparel").brand == ""
    assert match(matcher, "Rolex Daytona hoodie", "apparel").brand == "Rolex"


def test_brand_in_description_only_and_declared_brand(matcher):
    m = matcher.match(title="Classic leather tote", description="Same as the G.U.C.C.I one", category="bags")
    assert m.brand == "Gucci" and m.in_description and not m.in_title and m.obfuscated
    d = matcher.match(title="White sneakers", description="", brand="NIKE", category="shoes")
    assert d.brand == "Nike" and d.declared and not d.in_title and d.score == 100.0
    several = matcher.match(title="Nike Adidas Gucci style shoes", category="shoes")
    assert several.brand_count == 3


def test_price_ratio_against_the_reference_price(matcher):
    m = match(matcher, "Nike Air Max", price=12.0, currency="USD")
    assert m.reference_price == 120 and m.price_ratio == pytest.approx(0.1)
    eur = match(matcher, "Nike Air Max", price=100.0, currency="EUR")  # 1 EUR = 1.08 USD
    assert eur.price_ratio == pytest.approx(0.9)
    assert match(matcher, "Nike Air Max", price=10.0, currency="XAF").price_ratio is None  # no rate
    assert match(matcher, "Nike Air Max", "toys", price=10.0, currency="USD").price_ratio is None
    assert match(matcher, "Plain sneakers", price=10.0, currency="USD").price_ratio is None


def _flip(hex_hash: str, bits: int, rng: random.Random) -> str:
    value = int(hex_hash, 16)
    for b in rng.sample(range(len(hex_hash) * 4), bits):
        value ^= 1 << b
    return f"{value:0{len(hex_hash)}x}"


def test_hamming_distance_agrees_with_imagehash():
    rng = random.Random(7)
    for size in (16, 64):
        for _ in range(50):
            a = f"{rng.getrandbits(size * 4):0{size}x}"
            b = f"{rng.getrandbits(size * 4):0{size}x}"
            assert hamming_hex(a, b) == imagehash.hex_to_hash(a) - imagehash.hex_to_hash(b)


def test_image_distance_to_registered_images(matcher):
    rng = random.Random(3)
    registered = "368a367431ea1ab0"  # a Gucci image of the fixture registry
    near = _flip(registered, 4, rng)
    m = matcher.match(title="Leather belt", category="accessories", image_hashes=["c3c3c3c3e1e1f0f0", near])
    assert m.image_distance == 4 and m.image_brand == "Gucci" and m.brand == ""
    assert not m.shop_authorised
    own = matcher.match(
        title="Leather belt", category="accessories", image_hashes=[near], shop_id="shop-gucci-official"
    )
    assert own.shop_authorised
    assert matcher.match(title="Leather belt", image_hashes=[]).image_distance is None
    # a 16x16 hash (64 hex) is not comparable with the registry's 8x8 hashes
    assert matcher.match(title="Leather belt", image_hashes=["ab" * 32]).image_distance is None


def test_authorised_shop(matcher):
    assert match(matcher, "Nike Air Max", shop_id="shop-nike-official").shop_authorised
    assert not match(matcher, "Nike Air Max", shop_id="shop-knockoff").shop_authorised
    assert not match(matcher, "Plain sneakers", shop_id="shop-nike-official").shop_authorised


def test_every_registered_name_and_term_matches_itself(matcher):
    for brand in matcher.brands:
        category = next(iter(sorted(brand.categories)))
        for phrase in (brand.name, *brand.aliases, *brand.protected_terms):
            assert match(matcher, phrase, category).brand == brand.name, phrase


def test_skeleton_keeps_digit_only_tokens():
    assert skeleton_tokens("N1KE 350 ml, 8053") == ["nike", "350", "mi", "8053"]


def _registry_doc() -> dict:
    return yaml.safe_load(DEFAULT_REGISTRY.read_text())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["brands"][0].update(colour="red"), "colour"),
        (lambda d: d["brands"][0].update(image_hashes=["not-a-hash"]), "image_hashes"),
        (lambda d: d["brands"][0].update(reference_prices={"shoes": -1}), "reference_prices"),
        (lambda d: d["brands"].append(dict(d["brands"][0])), "declared twice"),
        (lambda d: d.update(brands=[]), "brands"),
    ],
)
def test_a_bad_registry_is_refused_with_the_reason(mutate, message):
    doc = _registry_doc()
    mutate(doc)
    with pytest.raises(ConfigError, match=message):
        parse_registry(doc)


def test_registry_edits_go_live_and_a_broken_edit_keeps_the_old(tmp_path: Path):
    path = tmp_path / "brands.yaml"
    doc = _registry_doc()
    path.write_text(yaml.safe_dump(doc))
    holder = RegistryHolder(path, interval_s=0)
    assert match(holder.current, "Zorblax trainers").brand == ""
    doc["brands"].append({"name": "Zorblax", "categories": ["shoes"], "authorised_shops": ["shop-z"]})
    path.write_text(yaml.safe_dump(doc))
    assert match(holder.current, "Zorblax trainers").brand == "Zorblax"
    path.write_text("brands: [oops")
    assert match(holder.current, "Zorblax trainers").brand == "Zorblax"
    assert holder.last_error and "not valid YAML" in holder.last_error


def test_loaded_registry_has_a_content_version(tmp_path: Path):
    a = load_registry(DEFAULT_REGISTRY)
    assert isinstance(a, BrandRegistry) and len(a.version) == 16
    copy = tmp_path / "b.yaml"
    copy.write_text(DEFAULT_REGISTRY.read_text() + "\n# comment\n")
    assert load_registry(copy).version != a.version


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(title=st.text(max_size=200), description=st.text(max_size=200), brand=st.none() | st.text(max_size=30))
def test_any_text_matches_without_error(matcher, title, description, brand):
    m = matcher.match(title=title, description=description, brand=brand, category="bags", price=10.0)
    assert m.brand in {"", *(b.name for b in matcher.brands)}
    assert (m.brand == "") == (m.score == 0.0)

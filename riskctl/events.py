"""The events the marketplace asks about: one typed model per kind.

Validation is strict (no coercion of ``"2"`` to ``2``) and closed (unknown fields are
rejected, so a client cannot smuggle in privileged fields). Identifiers are opaque
strings; money is a non-negative finite number in the event's currency.
"""

from __future__ import annotations

from datetime import UTC, datetime
from ipaddress import ip_address, ip_network
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    field_validator,
)

from riskctl.errors import MalformedJSON, ValidationFailed

Identifier = Annotated[
    str,
    Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/+=-]*$"),
]
HashHex = Annotated[str, Field(min_length=8, max_length=128, pattern=r"^[A-Za-z0-9_:=+/-]+$")]
Money = Annotated[float, Field(ge=0, le=1e10, allow_inf_nan=False)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
ShortText = Annotated[str, Field(max_length=500)]
# Sized so that any valid event fits the default 64 KiB body limit, even fully \u-escaped.
LongText = Annotated[str, Field(max_length=5_000)]
PHash = Annotated[str, Field(pattern=r"^[0-9a-f]{16,256}$")]


def _integral(value: object) -> object:
    # JSON Schema counts 3.0 as an integer; strict mode alone would reject it.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _canonical_ip(value: str) -> str:
    try:
        parsed = ip_address(value)
    except ValueError:
        raise ValueError("value is not a valid IPv4 or IPv6 address") from None
    # An IPv4-mapped IPv6 address is the IPv4 client: count it with its /24, not in ::/48.
    mapped = getattr(parsed, "ipv4_mapped", None)
    return str(mapped or parsed)


# A string (never a number or bool), normalised to its canonical text form.
IPAddress = Annotated[
    str,
    Field(min_length=2, max_length=45),
    AfterValidator(_canonical_ip),
    WithJsonSchema({"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}),
]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, str_strip_whitespace=False)


class BaseEvent(_Strict):
    event_id: Identifier = Field(description="Idempotency key: the same event_id is decided once.")
    occurred_at: AwareDatetime = Field(description="When it happened (RFC 3339 with offset).")
    device_id: Identifier = Field(description="Client device identifier (pseudonymised on arrival).")
    ip: IPAddress = Field(description="Client IP address (pseudonymised on arrival).")
    user_agent: ShortText | None = None
    session_id: Identifier | None = None

    @field_validator("occurred_at")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @property
    def ip_prefix(self) -> str:
        """The /24 (IPv4) or /48 (IPv6) network: shared by NAT'd farms and hosting ranges."""
        if "." in self.ip and ":" not in self.ip:  # canonical IPv4: the cheap, common path
            return self.ip.rsplit(".", 1)[0] + ".0/24"
        return str(ip_network(f"{self.ip}/48", strict=False))


class OrderItem(_Strict):
    product_id: Identifier
    quantity: Annotated[int, Field(ge=1, le=100_000), BeforeValidator(_integral)]
    unit_price: Money
    category: Identifier | None = None


class Payment(_Strict):
    method: Literal["card", "wallet", "bank_transfer", "cash_on_delivery", "gift_card", "bnpl", "other"]
    fingerprint: HashHex | None = Field(
        default=None, description="Stable card/wallet fingerprint from the PSP (pseudonymised on arrival)."
    )
    bin_country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = None


class OrderEvent(BaseEvent):
    kind: Literal["order"]
    order_id: Identifier
    buyer_id: Identifier
    shop_id: Identifier
    items: Annotated[list[OrderItem], Field(min_length=1, max_length=500)]
    amount: Money
    currency: Currency
    payment: Payment
    shipping_address_hash: HashHex
    coupon_code: Identifier | None = None
    buyer_created_at: AwareDatetime | None = Field(
        default=None, description="When the buyer's account was created."
    )
    shipping_country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = None
    parcel_weight_grams: Annotated[int, Field(ge=0, le=1_000_000), BeforeValidator(_integral)] | None = None


class ReviewEvent(BaseEvent):
    kind: Literal["review"]
    review_id: Identifier
    reviewer_id: Identifier
    product_id: Identifier
    shop_id: Identifier
    order_id: Identifier | None = None
    rating: Annotated[int, Field(ge=1, le=5), BeforeValidator(_integral)]
    text: LongText
    reviewer_created_at: AwareDatetime | None = None
    order_delivered_at: AwareDatetime | None = Field(
        default=None, description="Delivery time of the reviewed order, when known."
    )
    image_count: Annotated[int, Field(ge=0, le=100), BeforeValidator(_integral)] = 0


class CouponRedemptionEvent(BaseEvent):
    kind: Literal["coupon_redemption"]
    account_id: Identifier
    account_created_at: AwareDatetime
    coupon_code: Identifier
    campaign_id: Identifier
    discount_amount: Money
    currency: Currency | None = None
    order_id: Identifier | None = None
    referrer_id: Identifier | None = None
    payment_fingerprint: HashHex | None = None
    shipping_address_hash: HashHex | None = None
    new_user_only: bool = False


class ListingEvent(BaseEvent):
    kind: Literal["listing"]
    listing_id: Identifier
    shop_id: Identifier
    title: Annotated[str, Field(min_length=1, max_length=500)]
    description: LongText
    brand: Annotated[str, Field(max_length=200)] | None = None
    category: Identifier
    price: Money
    currency: Currency
    image_hashes: Annotated[list[PHash], Field(max_length=50)] = Field(default_factory=list)
    seller_created_at: AwareDatetime | None = None


Event = Annotated[
    OrderEvent | ReviewEvent | CouponRedemptionEvent | ListingEvent,
    Field(discriminator="kind"),
]
EVENT_MODELS: dict[str, type[BaseEvent]] = {
    "order": OrderEvent,
    "review": ReviewEvent,
    "coupon_redemption": CouponRedemptionEvent,
    "listing": ListingEvent,
}
_ADAPTER: TypeAdapter[Any] = TypeAdapter(Event)


def parse_event(raw: bytes | str) -> BaseEvent:
    """Decode and validate one JSON body in a single pass.

    Raises :class:`MalformedJSON` for bytes that are not JSON and
    :class:`ValidationFailed` (naming every bad field) for JSON that is not a valid event.
    """
    try:
        return _ADAPTER.validate_json(raw, strict=True)  # type: ignore[no-any-return]
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first["type"] == "json_invalid":
            raise MalformedJSON(f"the body is not valid JSON: {first['msg']}") from None
        if first["type"] in {"model_attributes_type", "model_type", "dict_type"} and not first["loc"]:
            raise ValidationFailed(
                "the body must be a JSON object",
                errors=[{"field": "", "message": "expected an object", "type": "object_type"}],
            ) from None
        raise ValidationFailed(_summary(exc), errors=validation_errors(exc)) from None


def canonical_json(event: BaseEvent) -> bytes:
    """The event as canonical JSON: two bodies that validate to the same event match."""
    return event.model_dump_json(exclude_none=False).encode()


def _loc(loc: tuple[Any, ...]) -> str:
    # The discriminated union adds the kind as the first path element; drop it.
    parts = [str(p) for p in loc]
    if parts and parts[0] in EVENT_MODELS:
        parts = parts[1:]
    return ".".join(parts)


def validation_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Pydantic errors as ``{field, message, type}``, fields as dotted paths."""
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        elif err["type"] == "union_tag_invalid":
            message = "kind must be one of: " + ", ".join(EVENT_MODELS)
        elif err["type"] == "union_tag_not_found":
            message = "kind is required (one of: " + ", ".join(EVENT_MODELS) + ")"
        field = _loc(err["loc"]) or ("kind" if err["type"].startswith("union_tag") else "")
        out.append({"field": field, "message": message, "type": err["type"]})
    return out


def _summary(exc: ValidationError) -> str:
    errs = validation_errors(exc)
    head = "; ".join(f"{e['field'] or '(body)'}: {e['message']}" for e in errs[:5])
    more = f" (and {len(errs) - 5} more)" if len(errs) > 5 else ""
    return head + more


def event_json_schema() -> dict[str, Any]:
    return _ADAPTER.json_schema(ref_template="#/components/schemas/{model}")

"""Sliding-window velocity features in Redis: one atomic round trip per check.

Each metric counts events (``count``), adds up a value (``sum``) or counts distinct
members (``distinct``) per entity key (buyer, shop, buyer x shop, device, ip /24, card,
address...) over every configured window. One Lua script updates and reads all of them
for an event, so a check costs exactly one Redis round trip and sees a consistent view.

* ``count``: a sorted set of event tokens scored by event time; exact.
* ``distinct``: a sorted set of member tokens scored by the latest time seen; exact.
* ``sum``: a sorted set of ``token|value`` members scored by event time; exact. One range
  read serves every window, so sums are kept for entities with modest event rates
  (a buyer, a buyer at a shop), not for shop- or campaign-wide totals.

A coupon redemption also updates, in the same script, the coupon entity-link graph: a
union-find over accounts joined by shared devices, cards and addresses (and /24 networks if
configured), with accounts, redemptions and per-campaign counts per cluster, plus the
referral tree (``coupon.cluster.*``, ``coupon.referral.*``, ``coupon.referrer.*``). It is
not windowed; :mod:`detectors.linkgraph` is the in-memory reference it must equal.

An event is applied once: the script first sets a dedupe key derived from ``event_id``
(``SET NX``), so a retry by the client or by redis-py after a timeout only reads.
All identifiers are keyed hashes (:mod:`riskctl.pseudonym`); nothing raw reaches Redis.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import redis

from detectors.linkgraph import DAY_MS, DEFAULT_LINK_TYPES, MAX_DEPTH, link_features
from riskctl.events import (
    BaseEvent,
    CouponRedemptionEvent,
    ListingEvent,
    OrderEvent,
    ReviewEvent,
)
from riskctl.features import FeatureSpec, FeatureType
from riskctl.pseudonym import Pseudonymizer
from riskctl.ratelimit import LUA_CHECK as RATE_LIMIT_LUA
from riskctl.ratelimit import Limit
from riskctl.text import normalize_text
from riskctl.windows import parse_window

Agg = Literal["count", "sum", "distinct"]

NEW_ACCOUNT_HOURS = 24  # "new account" for the per-campaign new-account velocity


def _new_account(event: CouponRedemptionEvent) -> bool:
    return (event.occurred_at - event.account_created_at).total_seconds() < NEW_ACCOUNT_HOURS * 3600


@dataclass(frozen=True, slots=True)
class Metric:
    kind: str
    entity: str
    name: str
    agg: Agg
    of: str | None = None  # member entity (distinct) or value name (sum)
    when: Callable[[Any], bool] | None = None  # count/sum only events matching this
    description: str = ""

    def feature(self, window: str) -> str:
        return f"velocity.{self.entity}.{self.name}_{window}"


def _m(
    kind: str,
    entity: str,
    name: str,
    agg: Agg,
    of: str | None = None,
    when: Callable[[Any], bool] | None = None,
    description: str = "",
) -> Metric:
    return Metric(kind, entity, name, agg, of, when, description)


METRICS: tuple[Metric, ...] = (
    # fake orders
    _m("order", "buyer", "orders", "count", description="orders by this buyer"),
    _m("order", "buyer", "amount", "sum", "amount", description="order value by this buyer"),
    _m("order", "buyer", "shops", "distinct", "shop", description="shops this buyer ordered from"),
    _m("order", "buyer", "devices", "distinct", "device", description="devices this buyer used"),
    _m("order", "buyer", "addresses", "distinct", "address", description="addresses this buyer shipped to"),
    _m("order", "buyer", "payments", "distinct", "payment", description="cards this buyer paid with"),
    _m("order", "shop", "orders", "count", description="orders at this shop"),
    _m("order", "shop", "buyers", "distinct", "buyer", description="buyers at this shop"),
    _m("order", "buyer_shop", "orders", "count", description="orders by this buyer at this shop"),
    _m("order", "buyer_shop", "amount", "sum", "amount", description="value by this buyer at this shop"),
    _m("order", "device", "orders", "count", description="orders from this device"),
    _m("order", "device", "buyers", "distinct", "buyer", description="buyers on this device"),
    _m("order", "ip", "orders", "count", description="orders from this IP"),
    _m("order", "ip", "buyers", "distinct", "buyer", description="buyers on this IP"),
    _m("order", "ip24", "buyers", "distinct", "buyer", description="buyers on this /24"),
    _m("order", "payment", "orders", "count", description="orders paid with this card"),
    _m("order", "payment", "buyers", "distinct", "buyer", description="buyers using this card"),
    _m("order", "address", "orders", "count", description="orders shipped to this address"),
    _m("order", "address", "buyers", "distinct", "buyer", description="buyers shipping to this address"),
    _m(
        "order",
        "shop_device",
        "buyers",
        "distinct",
        "buyer",
        description="buyers of this shop on this device",
    ),
    _m(
        "order",
        "shop_address",
        "buyers",
        "distinct",
        "buyer",
        description="buyers of this shop at this address",
    ),
    _m(
        "order",
        "shop_payment",
        "buyers",
        "distinct",
        "buyer",
        description="buyers of this shop with this card",
    ),
    _m("order", "coupon", "orders", "count", description="orders using this coupon code"),
    # malicious reviews
    _m("review", "reviewer", "reviews", "count", description="reviews by this account"),
    _m("review", "reviewer", "shops", "distinct", "shop", description="shops this account reviewed"),
    _m("review", "reviewer_shop", "reviews", "count", description="reviews by this account of this shop"),
    _m("review", "shop", "reviews", "count", description="reviews of this shop"),
    _m(
        "review",
        "shop",
        "one_star",
        "count",
        when=lambda e: e.rating == 1,
        description="1-star reviews of this shop",
    ),
    _m(
        "review",
        "shop",
        "five_star",
        "count",
        when=lambda e: e.rating == 5,
        description="5-star reviews of this shop",
    ),
    _m("review", "shop", "reviewers", "distinct", "reviewer", description="accounts reviewing this shop"),
    _m("review", "product", "reviews", "count", description="reviews of this product"),
    _m(
        "review",
        "product",
        "one_star",
        "count",
        when=lambda e: e.rating == 1,
        description="1-star reviews of this product",
    ),
    _m(
        "review",
        "product",
        "five_star",
        "count",
        when=lambda e: e.rating == 5,
        description="5-star reviews of this product",
    ),
    _m(
        "review",
        "device",
        "reviewers",
        "distinct",
        "reviewer",
        description="accounts reviewing from this device",
    ),
    _m("review", "ip", "reviewers", "distinct", "reviewer", description="accounts reviewing from this IP"),
    _m("review", "ip24", "reviewers", "distinct", "reviewer", description="accounts reviewing from this /24"),
    _m(
        "review",
        "text",
        "reviewers",
        "distinct",
        "reviewer",
        description="accounts posting this exact (normalised) text",
    ),
    # coupon abuse
    _m("coupon_redemption", "account", "redemptions", "count", description="redemptions by this account"),
    _m(
        "coupon_redemption",
        "account",
        "campaigns",
        "distinct",
        "campaign",
        description="campaigns this account redeemed",
    ),
    _m("coupon_redemption", "campaign", "redemptions", "count", description="redemptions in this campaign"),
    _m(
        "coupon_redemption",
        "campaign",
        "new_accounts",
        "distinct",
        "account",
        when=_new_account,
        description=f"accounts under {NEW_ACCOUNT_HOURS} hours old redeeming in this campaign",
    ),
    _m(
        "coupon_redemption",
        "account",
        "discount",
        "sum",
        "discount",
        description="discount redeemed by this account",
    ),
    _m(
        "coupon_redemption",
        "coupon",
        "accounts",
        "distinct",
        "account",
        description="accounts redeeming this code",
    ),
    _m(
        "coupon_redemption",
        "device",
        "accounts",
        "distinct",
        "account",
        description="accounts redeeming on this device",
    ),
    _m("coupon_redemption", "device", "redemptions", "count", description="redemptions on this device"),
    _m(
        "coupon_redemption",
        "payment",
        "accounts",
        "distinct",
        "account",
        description="accounts redeeming with this card",
    ),
    _m(
        "coupon_redemption",
        "address",
        "accounts",
        "distinct",
        "account",
        description="accounts redeeming to this address",
    ),
    _m(
        "coupon_redemption",
        "ip",
        "accounts",
        "distinct",
        "account",
        description="accounts redeeming from this IP",
    ),
    _m(
        "coupon_redemption",
        "ip24",
        "accounts",
        "distinct",
        "account",
        description="accounts redeeming from this /24",
    ),
    _m(
        "coupon_redemption",
        "campaign_ip24",
        "redemptions",
        "count",
        description="redemptions of this campaign from this /24",
    ),
    _m(
        "coupon_redemption",
        "campaign_device",
        "accounts",
        "distinct",
        "account",
        description="accounts redeeming this campaign on this device",
    ),
    _m(
        "coupon_redemption",
        "referrer",
        "invitees",
        "distinct",
        "account",
        description="accounts this referrer invited",
    ),
    _m(
        "coupon_redemption",
        "referrer",
        "invitee_devices",
        "distinct",
        "device",
        description="devices among this referrer's invitees",
    ),
    # listings
    _m("listing", "shop", "listings", "count", description="listings created by this shop"),
    _m("listing", "shop", "brands", "distinct", "brand", description="brands listed by this shop"),
    _m(
        "listing",
        "title",
        "shops",
        "distinct",
        "shop",
        description="shops listing this exact (normalised) title",
    ),
    _m("listing", "device", "shops", "distinct", "shop", description="shops managed from this device"),
)


def entities(event: BaseEvent) -> dict[str, str | None]:
    """Raw entity values of an event (tokenised before they leave this process)."""
    common: dict[str, str | None] = {
        "device": event.device_id,
        "ip": str(event.ip),
        "ip24": event.ip_prefix,
    }
    if isinstance(event, OrderEvent):
        buyer, shop = event.buyer_id, event.shop_id
        payment, address = event.payment.fingerprint, event.shipping_address_hash
        return common | {
            "buyer": buyer,
            "shop": shop,
            "buyer_shop": f"{buyer}\x1f{shop}",
            "payment": payment,
            "address": address,
            "shop_device": f"{shop}\x1f{event.device_id}",
            "shop_address": f"{shop}\x1f{address}",
            "shop_payment": f"{shop}\x1f{payment}" if payment else None,
            "coupon": event.coupon_code,
        }
    if isinstance(event, ReviewEvent):
        norm = normalize_text(event.text)
        return common | {
            "reviewer": event.reviewer_id,
            "shop": event.shop_id,
            "product": event.product_id,
            "reviewer_shop": f"{event.reviewer_id}\x1f{event.shop_id}",
            # very short texts ("good", "ok") are identical by chance, not by copy-paste
            "text": norm if len(norm) >= 20 else None,
        }
    if isinstance(event, CouponRedemptionEvent):
        return common | {
            "account": event.account_id,
            "campaign": event.campaign_id,
            "coupon": event.coupon_code,
            "payment": event.payment_fingerprint,
            "address": event.shipping_address_hash,
            "campaign_ip24": f"{event.campaign_id}\x1f{event.ip_prefix}",
            "campaign_device": f"{event.campaign_id}\x1f{event.device_id}",
            "referrer": event.referrer_id,
        }
    if isinstance(event, ListingEvent):
        return common | {
            "shop": event.shop_id,
            "brand": event.brand.strip().lower() if event.brand else None,
            "title": normalize_text(event.title),
        }
    raise TypeError(f"unknown event type {type(event).__name__}")


def values(event: BaseEvent) -> dict[str, float]:
    if isinstance(event, OrderEvent):
        return {"amount": event.amount}
    if isinstance(event, CouponRedemptionEvent):
        return {"discount": event.discount_amount}
    return {}


# KEYS[1] dedupe key, KEYS[2..1+nmetrics] one per metric, then the link-graph hash (coupon
# redemptions only), then one per hash read (reputation), then one per lookup.
# ARGV: now_ms, dedupe_ttl_ms, event token, nwin, windows_ms..., the metrics' ops (one
# character per metric: 'c' count, 'd' distinct, 's' sum), then per metric its arg (apply
# flag | member | value), then the link-graph flag (0|1) and,
# when 1: campaign-key prefix, account node, campaign, referrer node or '', device, day_ms,
# ttl_ms, nlinks, link nodes..., max depth; then nreads and one field per hash read; then one
# member per lookup; last, the API key's rate-limit counter (key) with its limit and window_ms
# (ARGV), checked first (riskctl.ratelimit): a refused check returns {-1, ms left} and touches
# no other key.
_LUA = """
local nkeys = #KEYS - 1
local rl_key, rl_limit, rl_window = KEYS[#KEYS], tonumber(ARGV[#ARGV - 1]), tonumber(ARGV[#ARGV])
""" + RATE_LIMIT_LUA + """
local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now_wall = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local token = ARGV[3]
local nwin = tonumber(ARGV[4])
local wins = {}
for i = 1, nwin do wins[i] = tonumber(ARGV[4 + i]) end
local maxw = wins[nwin]
local ops = ARGV[5 + nwin]
local nmetrics = #ops
local fresh = redis.call('SET', KEYS[1], '1', 'NX', 'PX', ttl)
local out = {fresh and 1 or 0}
local trim = string.byte(token, 1) % 16 == 0
local a = 6 + nwin
for k = 2, 1 + nmetrics do
  local key = KEYS[k]
  local op = string.sub(ops, k - 1, k - 1)
  local arg = ARGV[a]
  a = a + 1
  if op == 'c' or op == 'd' then
    if fresh and arg ~= '' and arg ~= '0' then
      if op == 'c' then
        redis.call('ZADD', key, now, token)
      else
        redis.call('ZADD', key, 'GT', now, arg)  -- GT still adds new members
      end
      -- trimming on one event in 16 (chosen by its token) keeps sets bounded for a
      -- fraction of the calls; reads are bounded by the window anyway
      if trim then redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. (now - maxw)) end
      redis.call('PEXPIRE', key, maxw + 60000)
    end
    for i = 1, nwin do
      if op == 'c' then
        out[#out + 1] = redis.call('ZCOUNT', key, now - wins[i], now)
      else
        out[#out + 1] = redis.call('ZCOUNT', key, now - wins[i], '+inf')
      end
    end
  else
    -- sum: members are 'token|value' scored by time; one range read serves every window
    if fresh and arg ~= '' then
      redis.call('ZADD', key, now, token .. '|' .. arg)
      if trim then redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. (now - maxw)) end
      redis.call('PEXPIRE', key, maxw + 60000)
    end
    local totals = {}
    for i = 1, nwin do totals[i] = 0 end
    local rows = redis.call('ZRANGEBYSCORE', key, now - maxw, now, 'WITHSCORES')
    for r = 1, #rows, 2 do
      local value = tonumber(string.match(rows[r], '|(.*)$'))
      local age = now - tonumber(rows[r + 1])
      for i = 1, nwin do
        if age <= wins[i] then totals[i] = totals[i] + value end
      end
    end
    for i = 1, nwin do out[#out + 1] = tostring(totals[i]) end
  end
end
-- the coupon link graph (see detectors/linkgraph.py for the reference it must match). One
-- hash G holds it all, by field prefix: p:<node> parent, a:<root> accounts, r:<root>
-- redemptions, e:<account> referral edge 'referrer|ms', f:<referrer> fan-out,
-- u:<account>|<campaign> seen marker, v:<referrer>|<device>|<account> seen marker,
-- w:<referrer>|<device> invitees on the device. Per-root campaign counts are hashes of their
-- own (<campaign> redemptions, u|<campaign> accounts), merged small into large on a union.
local nlg = tonumber(ARGV[a])
a = a + 1
local kfirst = 2 + nmetrics
if nlg > 0 then
  local G = KEYS[kfirst]
  kfirst = kfirst + 1
  local cprefix, acct, campaign, referrer = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local device, day, gttl = ARGV[a + 4], tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6])
  local nlinks = tonumber(ARGV[a + 7])
  a = a + 8
  local links = {}
  for i = 1, nlinks do links[i] = ARGV[a + i - 1] end
  a = a + nlinks
  local function find(x)
    local p = redis.call('HGET', G, 'p:' .. x)
    if not p then return nil end
    local path = {}
    while p ~= x do
      path[#path + 1] = x
      x = p
      p = redis.call('HGET', G, 'p:' .. x)
    end
    if fresh and #path > 1 then
      local args = {}
      for i = 1, #path - 1 do args[#args + 1] = 'p:' .. path[i]; args[#args + 1] = x end
      redis.call('HSET', G, unpack(args))
    end
    return x
  end
  local root
  if fresh then
    root = find(acct)
    if not root then
      redis.call('HSET', G, 'p:' .. acct, acct, 'a:' .. acct, 1)
      root = acct
    end
    for i = 1, nlinks do
      local other = find(links[i])
      if not other then
        redis.call('HSET', G, 'p:' .. links[i], root)
      elseif other ~= root then
        -- union by accounts: the larger absorbs the smaller, ties keep the account's root
        local c = redis.call('HMGET', G, 'a:' .. root, 'a:' .. other, 'r:' .. root, 'r:' .. other)
        local na, nb = tonumber(c[1]), tonumber(c[2])
        local big, small = root, other
        if na < nb then big, small = other, root end
        redis.call('HSET', G, 'p:' .. small, big, 'a:' .. big, na + nb,
          'r:' .. big, tonumber(c[3] or 0) + tonumber(c[4] or 0))
        redis.call('HDEL', G, 'a:' .. small, 'r:' .. small)
        local skey = cprefix .. small
        local rows = redis.call('HGETALL', skey)
        if #rows > 0 then
          local bkey = cprefix .. big
          for r = 1, #rows, 2 do redis.call('HINCRBY', bkey, rows[r], rows[r + 1]) end
          redis.call('DEL', skey)
        end
        root = big
      end
    end
    redis.call('HINCRBY', G, 'r:' .. root, 1)
    local ckey = cprefix .. root
    redis.call('HINCRBY', ckey, campaign, 1)
    -- distinct accounts per campaign: an account counts in its cluster at its first redemption
    if redis.call('HSETNX', G, 'u:' .. acct .. '|' .. campaign, 1) == 1 then
      redis.call('HINCRBY', ckey, 'u|' .. campaign, 1)
    end
    redis.call('PEXPIRE', ckey, gttl)
    if referrer ~= '' then
      if redis.call('HSETNX', G, 'e:' .. acct, referrer .. '|' .. now) == 1 then
        redis.call('HINCRBY', G, 'f:' .. referrer, 1)
      end
      if redis.call('HSETNX', G, 'v:' .. referrer .. '|' .. device .. '|' .. acct, 1) == 1 then
        redis.call('HINCRBY', G, 'w:' .. referrer .. '|' .. device, 1)
      end
    end
    -- dropped a TTL after the last redemption
    redis.call('PEXPIRE', G, gttl)
  else
    root = find(acct)  -- a retry reads, and writes nothing (not even path compression)
  end
  local c = redis.call('HMGET', G, 'a:' .. (root or ''), 'r:' .. (root or ''),
    'f:' .. referrer, 'w:' .. referrer .. '|' .. device)
  if root then
    local cc = redis.call('HMGET', cprefix .. root, campaign, 'u|' .. campaign)
    out[#out + 1] = tonumber(c[1] or 0)
    out[#out + 1] = tonumber(c[2] or 0)
    out[#out + 1] = tonumber(cc[1] or 0)
    out[#out + 1] = tonumber(cc[2] or 0)
  else
    out[#out + 1] = 0; out[#out + 1] = 0; out[#out + 1] = 0; out[#out + 1] = 0
  end
  -- referral depth: walk the stored edges upwards, at most maxdepth hops
  local depth, depth_day, recent, node = 0, 0, true, acct
  for _ = 1, tonumber(ARGV[a]) do
    local edge = redis.call('HGET', G, 'e:' .. node)
    if not edge then break end
    local sep = string.find(edge, '|', 1, true)
    depth = depth + 1
    if recent and now - tonumber(string.sub(edge, sep + 1)) <= day then
      depth_day = depth_day + 1
    else
      recent = false
    end
    node = string.sub(edge, 1, sep - 1)
  end
  a = a + 1
  out[#out + 1] = depth
  out[#out + 1] = depth_day
  if referrer ~= '' then
    out[#out + 1] = tonumber(c[3] or 0)
    out[#out + 1] = tonumber(c[4] or 0)
  else
    out[#out + 1] = 0; out[#out + 1] = 0
  end
end
-- hash reads (reputation mirrors: one hash per subject type, field = subject token)
local nreads = tonumber(ARGV[a])
a = a + 1
for k = kfirst, kfirst + nreads - 1 do
  out[#out + 1] = redis.call('HGET', KEYS[k], ARGV[a]) or ''
  a = a + 1
end
kfirst = kfirst + nreads
-- lookups: list memberships (sorted sets scored by expiry time in ms) read in the same trip
for k = kfirst, nkeys do
  local score = redis.call('ZSCORE', KEYS[k], ARGV[a])
  a = a + 1
  if score and tonumber(score) >= now_wall then out[#out + 1] = 1 else out[#out + 1] = 0 end
end
return out
"""


_LINK_DESCRIPTIONS = {
    "coupon.cluster.accounts": "accounts in this account's link cluster (joined by shared device, card, "
    "address or /24 network, transitively, over the coupon redemptions kept)",
    "coupon.cluster.redemptions": "coupon redemptions by the accounts of this account's link cluster",
    "coupon.cluster.campaign_redemptions": "redemptions of this campaign by the accounts of this "
    "account's link cluster",
    "coupon.cluster.campaign_accounts": "accounts of this account's link cluster that redeemed this campaign",
    "coupon.referral.depth": f"referral hops above this account (referrer, its referrer, ...; at most {MAX_DEPTH})",
    "coupon.referral.depth_24h": "referral hops above this account made within the 24 hours before this event",
    "coupon.referrer.invitees": "accounts naming this event's referrer as theirs",
    "coupon.referrer.invitees_on_device": "accounts naming this event's referrer that redeemed on this device",
}
LINK_FEATURES = tuple(link_features(0, 0, 0, 0, 0, 0, 0, 0))
assert set(LINK_FEATURES) == set(_LINK_DESCRIPTIONS)


def link_schema() -> list[FeatureSpec]:
    """The coupon link-graph features (not windowed: kept while the graph is active)."""
    kinds = frozenset({"coupon_redemption"})
    return [FeatureSpec(name, FeatureType.INT, _LINK_DESCRIPTIONS[name], kinds) for name in LINK_FEATURES]


def velocity_schema(
    windows: Sequence[str], metrics: Sequence[Metric] = METRICS, *, link_graph: bool = True
) -> list[FeatureSpec]:
    specs: dict[str, FeatureSpec] = {}
    for metric in metrics:
        ftype = FeatureType.FLOAT if metric.agg == "sum" else FeatureType.INT
        for window in windows:
            name = metric.feature(window)
            specs[name] = FeatureSpec(
                name, ftype, f"{metric.description} in the last {window}", frozenset({metric.kind})
            )
    return [*specs.values(), *(link_schema() if link_graph else [])]


@dataclass(frozen=True, slots=True)
class VelocityResult:
    features: dict[str, Any]
    available: bool
    fresh: bool  # False when this event had been counted before (a retry)
    error: str | None = None
    found: tuple[bool, ...] = ()  # one per lookup, in order
    hashes: tuple[bytes | None, ...] = ()  # one per hash read, in order (None = no field)
    limited_ms: int | None = None  # set when the API key's rate limit refused the check: ms left


class _KindPlan:
    """What ``observe`` needs for one event kind, worked out once per ``Velocity``.

    Per metric, in order: ``keys`` (key prefix ``rk:v:<kind>:<entity>:<name>:`` as bytes,
    entity) and ``steps`` (op, entity, member entity or value name, filter, the arg when it
    does not apply); ``head`` ends with the ops, one character per metric. ``names`` are the
    reply's feature names in order (metric by metric, window by window); ``sums`` are the
    (name, reply index) of the sums, the only values that need converting.
    """

    __slots__ = ("head", "keys", "links", "names", "nvalues", "steps", "sums", "tokenised")

    def __init__(
        self,
        metrics: tuple[Metric, ...],
        windows: Sequence[str],
        window_args: Sequence[str],
        links: bool,
        link_types: Sequence[str],
    ) -> None:
        self.links = links
        ops = [{"count": "c", "distinct": "d"}.get(m.agg, "s") for m in metrics]
        self.head = (*window_args, "".join(ops))
        self.keys = tuple((f"rk:v:{m.kind}:{m.entity}:{m.name}:".encode(), m.entity) for m in metrics)
        self.steps = tuple(
            (op, m.entity, m.of or "", m.when, "0" if op == "c" else "")
            for m, op in zip(metrics, ops, strict=True)
        )
        self.names = tuple(m.feature(w) for m in metrics for w in windows)
        self.nvalues = len(self.names)
        # counts arrive as integer replies (Python ints); sums as strings, converted by name
        # (the last metric of a name gives its value, as when they were assigned in turn)
        last: dict[str, tuple[int, bool]] = {}
        j = 1
        for m in metrics:
            for w in windows:
                last[m.feature(w)] = (j, m.agg == "sum")
                j += 1
        self.sums = tuple((name, j) for name, (j, is_sum) in last.items() if is_sum)
        # the entities whose tokens the plan uses: metric keys and members, graph links
        used = {m.entity for m in metrics} | {m.of for m in metrics if m.agg == "distinct" and m.of}
        if links:
            used |= {"device", *link_types}
        self.tokenised = frozenset(used)


class Velocity:
    """Reads and updates every velocity metric of an event in one Redis round trip."""

    PREFIX = b"rk:v:"
    # One hash tag: every link-graph key, including the per-cluster campaign hashes the
    # script names at run time, lives in one slot.
    GRAPH = "rk:v:{lg}:"
    _LINK_PREFIX = {"device": "d:", "payment": "p:", "address": "h:", "ip24": "n:"}

    def __init__(
        self,
        client: redis.Redis,
        pseudonymizer: Pseudonymizer,
        windows: Sequence[str],
        metrics: Sequence[Metric] = METRICS,
        *,
        link_graph: bool = True,
        link_types: Sequence[str] = DEFAULT_LINK_TYPES,
    ) -> None:
        self.client = client
        self.pseudo = pseudonymizer
        self.window_names = tuple(windows)
        self.window_ms = tuple(parse_window(w) * 1000 for w in windows)
        if list(self.window_ms) != sorted(self.window_ms):
            raise ValueError("velocity windows must be listed shortest first")
        self.metrics_by_kind: dict[str, tuple[Metric, ...]] = {}
        for metric in metrics:
            self.metrics_by_kind.setdefault(metric.kind, ())
            self.metrics_by_kind[metric.kind] += (metric,)
        self._script = client.register_script(_LUA)
        self._window_args = [str(len(self.window_ms)), *map(str, self.window_ms)]
        self.link_graph = link_graph
        unknown = set(link_types) - set(self._LINK_PREFIX)
        if unknown:
            raise ValueError(f"unknown link types {sorted(unknown)}; use {sorted(self._LINK_PREFIX)}")
        self.link_types = tuple(link_types)
        self._graph_key = f"{self.GRAPH}g".encode()
        # an idle graph goes after the longest window plus a day
        self._graph_ttl = self.window_ms[-1] + DAY_MS
        self._dedupe_ttl = self.window_ms[-1] + 3_600_000
        self._seen_prefix = self.PREFIX + b"seen:"
        self._link_prefixes = tuple((kind, self._LINK_PREFIX[kind]) for kind in self.link_types)
        self._plans: dict[str, _KindPlan] = {}
        for kind in self.metrics_by_kind:
            self._plan_for(kind)

    def _plan_for(self, kind: str) -> _KindPlan:
        plan = self._plans.get(kind)
        if plan is None:
            plan = self._plans[kind] = _KindPlan(
                self.metrics_by_kind.get(kind, ()),
                self.window_names,
                self._window_args,
                self._links_for(kind),
                self.link_types,
            )
        return plan

    def load_script(self) -> None:
        """Load the script up front so that even the first check is a single EVALSHA."""
        self.client.script_load(_LUA)

    def schema(self) -> list[FeatureSpec]:
        return velocity_schema(self.window_names, link_graph=self.link_graph)

    def _links_for(self, kind: str) -> bool:
        return self.link_graph and kind == "coupon_redemption"

    def unavailable(self, kind: str) -> dict[str, Any]:
        plan = self._plan_for(kind)
        out: dict[str, Any] = dict.fromkeys(plan.names)
        if plan.links:
            out.update(dict.fromkeys(LINK_FEATURES))
        return out

    def observe(
        self,
        event: BaseEvent,
        lookups: Sequence[tuple[bytes, str]] = (),
        reads: Sequence[tuple[bytes, str]] = (),
        limit: Limit | None = None,
    ) -> VelocityResult:
        """Apply ``event`` (once) and return every velocity feature of its kind.

        ``lookups`` are (sorted-set key, member) pairs read in the same round trip: list
        memberships, whose members are scored by their expiry time.
        """
        kind: str = event.kind  # type: ignore[attr-defined]
        plan = self._plans.get(kind) or self._plan_for(kind)
        keys, args = self._plan(event, plan)
        # ``reads`` are (hash key, field) pairs read in the same round trip (reputation mirrors)
        args.append(len(reads))
        for key, fld in reads:
            keys.append(key)
            args.append(fld)
        for key, member in lookups:
            keys.append(key)
            args.append(member)
        # the rate limit rides in the same round trip (0 = none): see riskctl.ratelimit
        if limit is not None:
            keys.append(limit.redis_key)
            args += (limit.requests, limit.window_ms)
        else:
            keys.append(b"rk:rl:-")
            args += (0, 0)
        try:
            raw = self._script(keys=keys, args=args)
        except (redis.RedisError, OSError) as exc:
            return VelocityResult(self.unavailable(kind), False, False, type(exc).__name__)
        if raw[0] == -1:
            return VelocityResult({}, True, False, limited_ms=int(raw[1]))
        # counts are integer replies (ints already), sums strings rounded to 6 places
        features: dict[str, Any] = dict(zip(plan.names, raw[1 : 1 + plan.nvalues], strict=True))
        for name, j in plan.sums:
            features[name] = round(float(raw[j]), 6)
        i = 1 + plan.nvalues
        if plan.links:
            features.update(zip(LINK_FEATURES, map(int, raw[i : i + len(LINK_FEATURES)]), strict=True))
            i += len(LINK_FEATURES)
        hashes = tuple([x or None for x in raw[i : i + len(reads)]])
        i += len(reads)
        return VelocityResult(features, True, bool(raw[0]), found=tuple(map(bool, raw[i:])), hashes=hashes)

    def _plan(self, event: BaseEvent, plan: _KindPlan) -> tuple[list[bytes], list[Any]]:
        token = self.pseudo.token
        tokenised = plan.tokenised
        # each entity's token once, as text (link-graph nodes, members) and as bytes (keys)
        ent_tokens: dict[str, str] = {
            name: token(name, raw)
            for name, raw in entities(event).items()
            if raw is not None and name in tokenised
        }
        ent_bytes = {name: tok.encode() for name, tok in ent_tokens.items()}
        event_token = token("event", event.event_id, cache=False)  # each seen once
        keys: list[bytes] = [self._seen_prefix + event_token.encode()]
        args: list[Any] = [
            int(event.occurred_at.timestamp() * 1000),
            self._dedupe_ttl,
            event_token,
            *plan.head,
        ]
        # An absent entity (no referrer, no card) still gets a key so the reply has a fixed
        # shape; its counters stay empty and read as zero.
        ident = ent_bytes.get
        keys += [prefix + ident(entity, b"-") for prefix, entity in plan.keys]
        vals = values(event)
        for op, entity, of, when, absent in plan.steps:
            if entity in ent_tokens and (when is None or when(event)):
                if op == "c":
                    args.append("1")
                elif op == "d":
                    args.append(ent_tokens.get(of) or "")
                else:
                    args.append(repr(vals.get(of, 0.0)))
            else:
                args.append(absent)
        if plan.links and isinstance(event, CouponRedemptionEvent):
            self._plan_links(event, ent_tokens, keys, args)
        else:
            args.append(0)
        return keys, args

    def _plan_links(
        self,
        event: CouponRedemptionEvent,
        ent_tokens: dict[str, str],
        keys: list[bytes],
        args: list[Any],
    ) -> None:
        token = self.pseudo.token
        acct = "a:" + token("account", event.account_id)
        # the referrer is an account like any other: its own edge is found under the same node
        referrer = "a:" + token("account", event.referrer_id) if event.referrer_id is not None else ""
        keys.append(self._graph_key)
        links = [
            prefix + tok for kind, prefix in self._link_prefixes if (tok := ent_tokens.get(kind)) is not None
        ]
        args += [
            1,
            f"{self.GRAPH}camp:",
            acct,
            token("campaign", event.campaign_id),
            referrer,
            ent_tokens.get("device") or "",
            DAY_MS,
            self._graph_ttl,
            len(links),
            *links,
            MAX_DEPTH,
        ]

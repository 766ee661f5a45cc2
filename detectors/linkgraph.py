"""The coupon entity-link graph, in memory: accounts joined by shared devices, cards,
addresses and /24 networks, plus the referral tree.

Pure Python, no Redis: the batch coupon scan builds it from stored redemptions, and tests use
:class:`LinkGraph` as the reference for the incremental version the velocity Lua script keeps
in Redis (``riskctl.velocity``). Both apply the same steps in the same order, so after the
same events they give the same features:

* a union-find over *nodes* — one per account and one per (entity type, value) — where each
  redemption joins its account with its device, card, address and, when ``ip24`` is among
  the link types, its /24 network (whichever it has);
  per component: distinct accounts, redemptions, and per campaign redemptions and distinct
  accounts that redeemed it;
* referral edges ``account → referrer`` recorded once, at the account's first redemption
  that names a referrer (later, different referrers are ignored), with the time of that
  redemption; the fan-out of a referrer is the number of accounts whose edge names it;
* the invitees of a referrer seen on a device: distinct accounts naming that referrer that
  redeemed on that device.

Referral depth walks the stored edges upwards from the account, at most ``MAX_DEPTH`` hops
(a cycle, A refers B refers A, therefore ends); ``depth_24h`` counts the hops up to the
first edge older than a day before the event.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

LINK_TYPES = ("device", "payment", "address", "ip24")  # every link type supported
# The default leaves /24 networks out: an office, campus or carrier NAT puts many unrelated
# people on one /24, and with it in the graph they all merge into one giant cluster.
DEFAULT_LINK_TYPES = ("device", "payment", "address")
MAX_DEPTH = 8
DAY_MS = 86_400_000

Node = tuple[str, str]  # ("account" | link type, value)


@dataclass(frozen=True, slots=True)
class Redemption:
    """What the link graph needs from one coupon redemption (ids opaque: raw or tokens)."""

    account: str
    campaign: str
    at_ms: int
    links: Mapping[str, str | None]  # link type → value (None = absent)
    referrer: str | None = None
    device: str | None = None  # the device, for the referrer's invitees-on-device count


def link_features(
    accounts: int,
    redemptions: int,
    campaign_redemptions: int,
    campaign_accounts: int,
    depth: int,
    depth_24h: int,
    invitees: int,
    invitees_on_device: int,
) -> dict[str, int]:
    """The feature names, shared by the Lua version's reader and this reference."""
    return {
        "coupon.cluster.accounts": accounts,
        "coupon.cluster.redemptions": redemptions,
        "coupon.cluster.campaign_redemptions": campaign_redemptions,
        "coupon.cluster.campaign_accounts": campaign_accounts,
        "coupon.referral.depth": depth,
        "coupon.referral.depth_24h": depth_24h,
        "coupon.referrer.invitees": invitees,
        "coupon.referrer.invitees_on_device": invitees_on_device,
    }


@dataclass
class LinkGraph:
    """Incremental union-find with per-component counters, plus the referral tree."""

    link_types: tuple[str, ...] = DEFAULT_LINK_TYPES
    parent: dict[Node, Node] = field(default_factory=dict)
    accounts: dict[Node, int] = field(default_factory=dict)  # root → distinct accounts
    redemptions: dict[Node, int] = field(default_factory=dict)  # root → redemptions
    campaigns: dict[Node, Counter[str]] = field(default_factory=dict)  # root → campaign counts
    campaign_accounts: dict[Node, Counter[str]] = field(default_factory=dict)  # root → distinct accounts
    redeemed: set[tuple[str, str]] = field(default_factory=set)  # (account, campaign) seen
    referral: dict[str, tuple[str, int]] = field(default_factory=dict)  # account → (referrer, ms)
    fanout: Counter[str] = field(default_factory=Counter)
    invitees_on: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))

    # -- union-find ---------------------------------------------------------------------
    def find(self, node: Node) -> Node | None:
        if node not in self.parent:
            return None
        root = node
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[node] != root:  # path compression
            self.parent[node], node = root, self.parent[node]
        return root

    def _union(self, a: Node, b: Node) -> Node:
        # Larger (by accounts) absorbs smaller; ties keep ``a``, the redeeming account's root.
        if self.accounts[a] < self.accounts[b]:
            a, b = b, a
        self.parent[b] = a
        self.accounts[a] += self.accounts.pop(b)
        self.redemptions[a] = self.redemptions.get(a, 0) + self.redemptions.pop(b, 0)
        moved = self.campaigns.pop(b, None)
        if moved:
            self.campaigns.setdefault(a, Counter()).update(moved)
        moved = self.campaign_accounts.pop(b, None)
        if moved:
            self.campaign_accounts.setdefault(a, Counter()).update(moved)
        return a

    # -- one redemption -----------------------------------------------------------------
    def add(self, r: Redemption) -> None:
        """Apply one redemption (call once per distinct event)."""
        acct: Node = ("account", r.account)
        root = self.find(acct)
        if root is None:
            self.parent[acct] = acct
            self.accounts[acct] = 1
            root = acct
        for kind in self.link_types:
            value = r.links.get(kind)
            if value is None:
                continue
            node: Node = (kind, value)
            other = self.find(node)
            if other is None:
                self.parent[node] = root
            elif other != root:
                root = self._union(root, other)
        self.redemptions[root] = self.redemptions.get(root, 0) + 1
        per_campaign = self.campaigns.get(root)
        if per_campaign is None:
            per_campaign = self.campaigns[root] = Counter()
        per_campaign[r.campaign] += 1
        if (r.account, r.campaign) not in self.redeemed:
            self.redeemed.add((r.account, r.campaign))
            per_campaign = self.campaign_accounts.get(root)
            if per_campaign is None:
                per_campaign = self.campaign_accounts[root] = Counter()
            per_campaign[r.campaign] += 1
        if r.referrer is not None:
            if r.account not in self.referral:
                self.referral[r.account] = (r.referrer, r.at_ms)
                self.fanout[r.referrer] += 1
            if r.device is not None:
                self.invitees_on[(r.referrer, r.device)].add(r.account)

    def features(self, r: Redemption) -> dict[str, int]:
        """The features of ``r`` as the check sees them (after ``r`` was applied)."""
        root = self.find(("account", r.account))
        accounts = redemptions = in_campaign = campaign_accounts = 0
        if root is not None:
            accounts = self.accounts[root]
            redemptions = self.redemptions.get(root, 0)
            in_campaign = self.campaigns.get(root, Counter())[r.campaign]
            campaign_accounts = self.campaign_accounts.get(root, Counter())[r.campaign]
        depth, depth_24h = self.depth(r.account, r.at_ms)
        invitees = on_device = 0
        if r.referrer is not None:
            invitees = self.fanout[r.referrer]
            if r.device is not None:
                on_device = len(self.invitees_on.get((r.referrer, r.device), ()))
        return link_features(
            accounts, redemptions, in_campaign, campaign_accounts, depth, depth_24h, invitees, on_device
        )

    def observe(self, r: Redemption) -> dict[str, int]:
        self.add(r)
        return self.features(r)

    def depth(self, account: str, now_ms: int) -> tuple[int, int]:
        depth = depth_24h = 0
        recent = True
        node = account
        for _ in range(MAX_DEPTH):
            edge = self.referral.get(node)
            if edge is None:
                break
            depth += 1
            if recent and now_ms - edge[1] <= DAY_MS:
                depth_24h += 1
            else:
                recent = False
            node = edge[0]
        return depth, depth_24h

    # -- offline views ------------------------------------------------------------------
    def components(self) -> dict[Node, list[str]]:
        """root → its accounts (sorted)."""
        out: dict[Node, list[str]] = defaultdict(list)
        for node in list(self.parent):
            if node[0] == "account":
                root = self.find(node)
                assert root is not None
                out[root].append(node[1])
        return {root: sorted(members) for root, members in out.items()}

    def cluster_of(self, account: str) -> Node | None:
        return self.find(("account", account))


def build(redemptions: Iterable[Redemption], link_types: tuple[str, ...] = DEFAULT_LINK_TYPES) -> LinkGraph:
    graph = LinkGraph(link_types)
    for r in redemptions:
        graph.add(r)
    return graph

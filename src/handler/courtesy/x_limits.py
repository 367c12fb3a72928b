"""X's published limits and prices, in one place. They change: check the sources.

Courtesy never relies on the rate limits below at run time (it reads the
x-rate-limit-* headers of every answer); they are here for sizing, the
benchmark's cost estimates and the docs.
"""

# Rate limits, per user (X API v2 rate-limit page, docs.x.com/x-api/fundamentals/rate-limits).
FOLLOWERS_LOOKUP_PER_15_MIN = 300
DM_SEND_PER_15_MIN = 15
DM_SEND_PER_24_H = 1_440
DM_LOOKUP_PER_15_MIN = 15
# GET /2/users?ids= (X's users-lookup migration guide): per user; 300 per 15 minutes per app.
USERS_LOOKUP_PER_15_MIN = 900

# Pay-per-use prices in US dollars (X API pricing, pay-per-use launched February 2026).
# A resource read again in the same UTC day is billed once (X calls this a soft guarantee).
PRICE_PER_FOLLOWER_READ = 0.010
PRICE_PER_OWNED_FOLLOWER_READ = 0.001  # the account reading its own followers through its own app
PRICE_PER_DM_SENT = 0.015
PRICE_PER_DM_EVENT_READ = 0.010
PRICE_PER_USER_LOOKUP = 0.010  # per user returned by GET /2/users?ids=; never an owned read
# X Activity API: per event delivered (follow.follow, follow.unfollow, dm.received alike, the account's own
# follows included), deduplicated within 24 hours (X's pricing page, x-api/getting-started/pricing, read 2026-12-01).
PRICE_PER_ACTIVITY_EVENT = 0.010

# Sizes (X API v2 reference: GET /2/users/:id/followers, POST .../messages, GET /2/dm_events).
FOLLOWERS_PAGE_MAX = 1_000
DM_TEXT_LIMIT = 10_000
DM_EVENTS_PAGE_MAX = 100
DM_EVENTS_KEPT_DAYS = 30
USERS_LOOKUP_MAX_IDS = 100  # GET /2/users?ids= (X API v2 reference, users lookup)

# X's OAuth 2.0 docs (docs.x.com, "OAuth 2.0 Authorization Code Flow with PKCE"): an access token
# lasts two hours.
ACCESS_TOKEN_SECONDS = 2 * 60 * 60

//! Authentication: publishable keys, machine JWTs, per-key rate limits.

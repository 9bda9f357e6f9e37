package metering

import "context"

// KeyUsable reports whether key belongs to an existing, active user whose
// key has not expired. A gateway asks before it reads a request body, so a
// client without a usable key costs neither memory nor a parse. It answers
// from the local key cache and negative cache when it can (no Redis round
// trip for a known key or a recently seen unknown one). It is a pre-check:
// the charge or reservation that follows checks again, atomically.
// Errors wrap ErrUnavailable: fail closed.
func (e *Engine) KeyUsable(ctx context.Context, key string) (bool, error) {
	if !WellFormedKey(key) {
		return false, nil
	}
	h := e.hasher.Hash(key)
	now := e.cfg.Now()
	ent, negative := e.cache.get(h, now)
	if negative {
		return false, nil
	}
	if ent != nil && ent.usable(now.UnixMilli()) {
		return true, nil
	}
	if ent != nil {
		// A cached "inactive" or "expired" may be stale (reactivated or
		// extended since, which only Redis knows): look again.
		e.cache.drop(h)
	}
	ent, err := e.resolve(ctx, h)
	if err != nil || ent == nil {
		return false, err
	}
	return ent.usable(now.UnixMilli()), nil
}

func (u *userEntry) usable(nowMs int64) bool {
	return u.active && (u.expiresMs <= 0 || nowMs < u.expiresMs)
}

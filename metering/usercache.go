package metering

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// userEntry is what a gateway remembers about a key between requests: who
// owns it and the project settings needed to compute period starts in Go.
// The charge script checks the versions, so a stale entry is detected on the
// next request and refreshed; it is never trusted for money or status.
type userEntry struct {
	userID  int64
	userArg string // user id as a script argument
	// keyArg is the key's hash as the scripts take it (the raw 32 bytes),
	// kept so a charge does not convert the hash to a string each time.
	keyArg     string
	versionArg string
	shard      *ShardKeys // the shard of the user's keys (its project's)
	userKey    string
	flightKey  string // the user's in-flight set
	projectID  int64
	projectVer string
	projectKey string
	username   string
	project    string
	period     Period
	loc        *time.Location
	// active and expiresMs (0: never) as read with the entry, for
	// KeyUsable's pre-check only: the scripts check them atomically.
	active    bool
	expiresMs int64
	bounds    atomic.Pointer[periodBounds]
}

// periodBounds caches the period starts until the next boundary, so the
// hot path does no calendar maths.
type periodBounds struct {
	allowanceStart string // Unix seconds, as a script argument
	month          string // month index, as a script argument
	allowanceEnd   int64  // Unix ms the allowance period ends; 0: no period
	until          time.Time
}

func (u *userEntry) periodArgs(now time.Time) (allowanceStart, month string) {
	b := u.periodBounds(now)
	return b.allowanceStart, b.month
}

func (u *userEntry) periodBounds(now time.Time) *periodBounds {
	b := u.bounds.Load()
	if b == nil || !now.Before(b.until) {
		until := periodEnd(PeriodMonthly, u.loc, now)
		if u.period == PeriodDaily || u.period == PeriodWeekly {
			if end := periodEnd(u.period, u.loc, now); end.Before(until) {
				until = end
			}
		}
		b = &periodBounds{
			allowanceStart: strconv.FormatInt(PeriodStart(u.period, u.loc, now), 10),
			month:          strconv.FormatInt(MonthIndex(u.loc, now), 10),
			until:          until,
		}
		if u.period != PeriodNone {
			b.allowanceEnd = periodEnd(u.period, u.loc, now).UnixMilli()
		}
		u.bounds.Store(b)
	}
	return b
}

// userCache maps key hashes to entries, and remembers unknown hashes for a
// short while so that a flood of unknown keys costs neither Postgres queries
// nor, mostly, Redis round trips. Both maps are bounded.
type userCache struct {
	mu       sync.RWMutex
	known    map[KeyHash]*userEntry
	unknown  map[KeyHash]time.Time
	maxKnown int
	maxNeg   int
	negTTL   time.Duration
}

func newUserCache(maxNeg int, negTTL time.Duration) *userCache {
	return &userCache{known: map[KeyHash]*userEntry{}, unknown: map[KeyHash]time.Time{},
		maxKnown: 1 << 18, maxNeg: maxNeg, negTTL: negTTL}
}

// get returns the entry, or nil; negative is true when h is known unknown.
func (c *userCache) get(h KeyHash, now time.Time) (e *userEntry, negative bool) {
	c.mu.RLock()
	e = c.known[h]
	var exp time.Time
	if e == nil {
		exp, negative = c.unknown[h]
	}
	c.mu.RUnlock()
	return e, negative && now.Before(exp)
}

func (c *userCache) put(h KeyHash, e *userEntry) {
	c.mu.Lock()
	if len(c.known) >= c.maxKnown {
		clear(c.known) // crude but bounded; entries are cheap to rebuild
	}
	c.known[h] = e
	delete(c.unknown, h)
	c.mu.Unlock()
}

func (c *userCache) putUnknown(h KeyHash, now time.Time) {
	c.mu.Lock()
	if len(c.unknown) >= c.maxNeg {
		for k, exp := range c.unknown {
			if !now.Before(exp) {
				delete(c.unknown, k)
			}
		}
		if len(c.unknown) >= c.maxNeg {
			clear(c.unknown)
		}
	}
	c.unknown[h] = now.Add(c.negTTL)
	c.mu.Unlock()
}

func (c *userCache) drop(h KeyHash) {
	c.mu.Lock()
	delete(c.known, h)
	delete(c.unknown, h)
	c.mu.Unlock()
}

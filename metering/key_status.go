package metering

import "time"

// KeyStatus is what a gateway does with a user's key now.
type KeyStatus string

const (
	// KeyActive: the key is accepted.
	KeyActive KeyStatus = "active"
	// KeyExpired: the key's expiry has passed (the user is active).
	KeyExpired KeyStatus = "expired"
	// KeyRevoked: the user is deactivated, so the key is refused until
	// the user is activated again.
	KeyRevoked KeyStatus = "revoked"
)

// ValidKeyStatus reports whether s names a key status.
func ValidKeyStatus(s string) bool {
	switch KeyStatus(s) {
	case KeyActive, KeyExpired, KeyRevoked:
		return true
	}
	return false
}

// KeyStatus is the status of u's key at now ("" when u has none), decided
// as the gateway decides (userEntry.usable): in whole milliseconds, a key
// is expired from the millisecond of its expiry on.
func (u *User) KeyStatus(now time.Time) KeyStatus {
	switch {
	case u.Key == nil:
		return ""
	case !u.Active:
		return KeyRevoked
	case u.Key.ExpiresAt != nil && now.UnixMilli() >= u.Key.ExpiresAt.UnixMilli():
		return KeyExpired
	}
	return KeyActive
}

// expiredBefore is the instant a key's expiry must be before for the key
// to count as expired at now: the SQL filter's form of KeyStatus (a
// timestamp's milliseconds, floored, reach now's exactly when the
// timestamp is before now's next millisecond).
func expiredBefore(now time.Time) time.Time { return time.UnixMilli(now.UnixMilli() + 1) }

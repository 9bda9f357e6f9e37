package metering

import (
	"context"
	"encoding/base64"
	"math"
	"strconv"
	"strings"
	"time"
)

// UserSort orders a user listing.
type UserSort string

const (
	SortUsername UserSort = "username"
	// SortCredits: most personal credits first. See UserQuery.
	SortCredits UserSort = "-credits"
	// SortActivity: most recent usage first; never-used users last.
	SortActivity UserSort = "-activity"
)

// ProjectNone as UserQuery.Project selects users without a project.
const ProjectNone = "none"

// Page sizes of a user listing.
const (
	DefaultUserLimit = 50
	MaxUserLimit     = 1000
)

// UserQuery selects and orders a page of users.
//
// Sorting by credits orders by personal credits (awarded + purchased) as
// recorded in the Postgres ledger, not by the live effective credits each
// user shows. Why: effective credits are not a per-user quantity one can
// index. The allowance part refills lazily at period boundaries in each
// project's time zone, and the pool part is shared, so every charge by any
// member would reorder its whole project; computing them live means one
// Redis script per matching user (100,000 users: seconds, not
// milliseconds). Personal credits are the part that is the user's own and
// persists, and members of one project share the same allowance rule and
// pool, so within a project the order is the one an admin expects. The
// ledger lags Redis only by events not yet reconciled (normally under a
// second), so a user who spent in the last moment may sit a few places
// off; the balances shown are the live ones. The order is total (username
// breaks ties) and the cursor is the last row's (key, username), so pages
// never overlap or skip while the ledger holds still; a user whose balance
// changes between two page requests may move across the cursor, as in any
// keyset pagination over live data.
type UserQuery struct {
	Search  string // substring of the username (matched in lower case)
	Project string // project name, ProjectNone, or "" for any
	Status  string // "active", "inactive" or "" for any
	Sort    UserSort
	Limit   int    // 1..MaxUserLimit; 0 means DefaultUserLimit
	Cursor  string // from a previous page's next cursor; "" for the first
	Balance string // BalanceZero, or "" for any (user_list_balance.go)

	// KeyStatus selects users whose key has this status now ("" for any).
	KeyStatus KeyStatus
	// KeyOlderThan selects users whose key was made more than this long
	// ago (0 for any), to find keys due for rotation.
	KeyOlderThan time.Duration

	zero *zeroBalanceFilter // set while listing with Balance = BalanceZero
}

func (q *UserQuery) normalize() (*userCursor, error) {
	q.Search = strings.ToLower(q.Search)
	if q.Search != "" && (len(q.Search) > 63 || strings.Trim(q.Search, "abcdefghijklmnopqrstuvwxyz0123456789._-") != "") {
		return nil, invalid("search", "must be at most 63 characters of a-z, 0-9, '.', '_' and '-' (usernames hold no others)")
	}
	if q.Project != "" && q.Project != ProjectNone && !ValidName(q.Project) {
		return nil, invalid("project", `must be a project name or "none"`)
	}
	if q.Status != "" && q.Status != "active" && q.Status != "inactive" {
		return nil, invalid("status", `must be "active" or "inactive"`)
	}
	if q.KeyStatus != "" && !ValidKeyStatus(string(q.KeyStatus)) {
		return nil, invalid("key_status", `must be "active", "expired" or "revoked"`)
	}
	if q.KeyOlderThan < 0 {
		return nil, invalid("key_older_than", "must not be negative")
	}
	switch q.Sort {
	case "":
		q.Sort = SortUsername
	case SortUsername, SortCredits, SortActivity:
	default:
		return nil, invalid("sort", `must be "username", "-credits" or "-activity"`)
	}
	if q.Balance != "" && q.Balance != BalanceZero {
		return nil, invalid("balance", `must be "zero"`)
	}
	if q.Limit == 0 {
		q.Limit = DefaultUserLimit
	}
	if q.Limit < 1 || q.Limit > MaxUserLimit {
		return nil, invalid("limit", "must be a whole number from 1 to 1000")
	}
	if q.Cursor == "" {
		return nil, nil
	}
	c, ok := parseUserCursor(q.Cursor, q.Sort)
	if !ok {
		return nil, invalid("cursor", "is not a cursor this API returned for this sort")
	}
	return c, nil
}

// userCursor is the last row of a page: its sort key and username.
type userCursor struct {
	key      int64 // personal micro-credits, or last activity in Unix µs (negInf: never)
	username string
}

const negInf = math.MinInt64

// The encoded cursor: base64url of "sort key username", opaque to clients.
func (c *userCursor) encode(sort UserSort) string {
	s := string(sort) + " " + strconv.FormatInt(c.key, 10) + " " + c.username
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

func parseUserCursor(s string, sort UserSort) (*userCursor, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, false
	}
	parts := strings.Split(string(b), " ")
	if len(parts) != 3 || UserSort(parts[0]) != sort || !ValidName(parts[2]) {
		return nil, false
	}
	key, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return nil, false
	}
	return &userCursor{key: key, username: parts[2]}, true
}

func cursorOf(u *User, sort UserSort) *userCursor {
	c := &userCursor{username: u.Username}
	switch sort {
	case SortCredits:
		c.key = int64(u.Awarded + u.Purchased)
	case SortActivity:
		c.key = negInf
		if u.LastActivityAt != nil {
			c.key = u.LastActivityAt.UnixMicro()
		}
	}
	return c
}

// FindUsers returns a page of users matching q, with live balances, and
// the cursor of the next page ("" on the last). Bad query values are
// *InvalidError naming the field.
func (e *Engine) FindUsers(ctx context.Context, q UserQuery) ([]UserView, string, error) {
	c, err := q.normalize()
	if err != nil {
		return nil, "", err
	}
	if q.Balance == BalanceZero {
		return e.findZeroBalance(ctx, q, c)
	}
	users, err := listUsersPage(ctx, e.db, &q, c, e.cfg.Now())
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(users) > q.Limit {
		users = users[:q.Limit]
		next = cursorOf(&users[q.Limit-1], q.Sort).encode(q.Sort)
	}
	views, err := e.views(ctx, users)
	return views, next, err
}

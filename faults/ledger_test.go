//go:build faults

package faults

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/metering"
)

// What the checks read: the Postgres ledger and balances, and Redis's.

type ledgerEvent struct {
	id, kind, request       string
	userID, projectID       int64
	cost, dAllowance, dPool int64
	dAwarded, dPurchased    int64
	upstreamStatus          *int32 // nil: settled by the sweeper (or not a settlement)
	inputUnits, outputUnits *int64
	// reserved: a hold's estimate, a credit lease's size; forfeited: what
	// a lease_end could not give back; note: why (the sweeper's note).
	reserved, forfeited int64
	note                string
	at                  time.Time
}

// requestN reads the request number from an event's label ("GET /f/12/ok/x").
var labelRE = regexp.MustCompile(`^(?:GET|POST) /[fcl]/([0-9]+)/`)

func (e *ledgerEvent) requestN() (int64, bool) {
	m := labelRE.FindStringSubmatch(e.request)
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	return n, err == nil
}

func ctxTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// ledger reads every event of the users and the project.
func (w *world) ledger(userIDs []int64, projectID int64) ([]*ledgerEvent, error) {
	ctx, cancel := ctxTimeout(time.Minute)
	defer cancel()
	rows, err := w.db.Query(ctx, `SELECT event_id, kind, coalesce(request, ''), coalesce(user_id, 0), coalesce(project_id, 0),
			cost, d_allowance, d_pool, d_awarded, d_purchased, upstream_status, input_units, output_units,
			coalesce(reserved, 0), coalesce(forfeited, 0), coalesce(note, ''), occurred_at
		FROM events WHERE user_id = ANY($1) OR project_id = $2`, userIDs, projectID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*ledgerEvent
	for rows.Next() {
		e := &ledgerEvent{}
		if err := rows.Scan(&e.id, &e.kind, &e.request, &e.userID, &e.projectID, &e.cost, &e.dAllowance, &e.dPool,
			&e.dAwarded, &e.dPurchased, &e.upstreamStatus, &e.inputUnits, &e.outputUnits,
			&e.reserved, &e.forfeited, &e.note, &e.at); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// userRow is a user's balances in Postgres, in the order Redis's fields
// are read (redisUserFields).
type userRow struct {
	id        int64
	projectID int64 // 0: none; with id, picks the user's Redis shard
	name      string
	fields    [6]int64 // awarded, purchased, allowance, allowance period, pool used, grant month
}

var redisUserFields = []string{"aw", "pr", "a", "ap", "pu", "gm"}

func (w *world) userRows(names []string) (map[string]*userRow, error) {
	ctx, cancel := ctxTimeout(30 * time.Second)
	defer cancel()
	rows, err := w.db.Query(ctx, `SELECT id, coalesce(project_id, 0), username, awarded, purchased, allowance_remaining, allowance_period, pool_used, grant_month
		FROM users WHERE username = ANY($1)`, names)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]*userRow{}
	for rows.Next() {
		u := &userRow{}
		f := &u.fields
		if err := rows.Scan(&u.id, &u.projectID, &u.name, &f[0], &f[1], &f[2], &f[3], &f[4], &f[5]); err != nil {
			return nil, err
		}
		out[u.name] = u
	}
	return out, rows.Err()
}

func (w *world) projectRow(name string) (id, pool int64, err error) {
	ctx, cancel := ctxTimeout(30 * time.Second)
	defer cancel()
	err = w.db.QueryRow(ctx, `SELECT id, pool_balance FROM projects WHERE name = $1`, name).Scan(&id, &pool)
	return id, pool, err
}

// redisUser reads a user's balances from Redis; ok is false when Redis
// has not loaded the user (Postgres is then the whole truth).
func (w *world) redisUser(projectID, id int64) (fields [6]int64, ok bool, err error) {
	ctx, cancel := ctxTimeout(10 * time.Second)
	defer cancel()
	vals, err := w.redis.client.HMGet(ctx, w.keys.ShardOf(projectID, id).User(id), redisUserFields...).Result()
	if err != nil || vals[0] == nil {
		return fields, false, err
	}
	for i, v := range vals {
		s, _ := v.(string)
		if fields[i], err = strconv.ParseInt(s, 10, 64); err != nil {
			return fields, false, fmt.Errorf("user %d field %s=%v: %w", id, redisUserFields[i], v, err)
		}
	}
	return fields, true, nil
}

func (w *world) redisPool(projectID int64) (int64, bool, error) {
	ctx, cancel := ctxTimeout(10 * time.Second)
	defer cancel()
	v, err := w.redis.client.HGet(ctx, w.keys.ProjectShard(projectID).Project(projectID), "pb").Int64()
	if err == redis.Nil {
		return 0, false, nil
	}
	return v, err == nil, err
}

// inFlight returns a user's live in-flight members (lease deadline ahead).
func (w *world) inFlight(projectID, userID int64) ([]string, error) {
	ctx, cancel := ctxTimeout(10 * time.Second)
	defer cancel()
	return w.redis.client.ZRangeByScore(ctx, w.keys.ShardOf(projectID, userID).InFlight(userID), &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(time.Now().UnixMilli(), 10), Max: "+inf"}).Result()
}

// streamState is how many events wait in the shards' streams and how
// many of those a reconciler has read but not yet acknowledged.
func (w *world) streamState() (length, pending int64, err error) {
	ctx, cancel := ctxTimeout(10 * time.Second)
	defer cancel()
	for _, sh := range w.keys.Shards() {
		n, err := w.redis.client.XLen(ctx, sh.Events()).Result()
		if err != nil {
			return 0, 0, err
		}
		length += n
		p, err := w.redis.client.XPending(ctx, sh.Events(), "reconciler").Result()
		if redis.HasErrorPrefix(err, "NOGROUP") {
			continue // no reconciler read this shard yet: nothing pending
		}
		if err != nil {
			return 0, 0, err
		}
		pending += p.Count
	}
	return length, pending, nil
}

// shardsZCard is the total size of one sorted set of every shard's (key
// names it: (*metering.ShardKeys).Leases, say).
func (w *world) shardsZCard(ctx context.Context, key func(*metering.ShardKeys) string) (int64, error) {
	var total int64
	for i := range w.keys.Shards() {
		n, err := w.redis.client.ZCard(ctx, key(w.keys.Shard(i))).Result()
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

package metering

import (
	"context"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

var eventCopyColumns = []string{"event_id", "kind", "occurred_at", "user_id", "username",
	"project_id", "project_name", "cost", "d_allowance", "d_pool", "d_awarded", "d_purchased",
	"d_pool_used", "allowance_period", "grant_month", "request", "actor", "note",
	"model", "input_units", "output_units", "reserved", "upstream_status", "duration_ms",
	"shortfall", "forfeited", "served_model"}

var eventColumnList = strings.Join(eventCopyColumns, ", ")

// applyEventsSQL inserts the staged events that are new and, in the same
// statement, adds exactly those to the balances and the daily usage rollup. A replayed event conflicts
// on its id, is not returned by the INSERT, and so changes nothing.
var applyEventsSQL = `
WITH ins AS (
	INSERT INTO events (` + eventColumnList + `)
	SELECT ` + eventColumnList + `
	FROM event_staging
	ON CONFLICT (event_id) DO NOTHING
	RETURNING user_id, project_id, kind, occurred_at, d_allowance, d_pool, d_awarded,
		d_purchased, d_pool_used, allowance_period, grant_month, username, project_name, cost, model
), user_deltas AS (
	UPDATE users SET
		allowance_remaining = users.allowance_remaining + d.a,
		awarded = users.awarded + d.aw,
		purchased = users.purchased + d.pr,
		pool_used = users.pool_used + d.pu,
		allowance_period = greatest(users.allowance_period, d.ap),
		grant_month = greatest(users.grant_month, d.gm),
		last_activity_at = greatest(users.last_activity_at, d.last_use)
	FROM (SELECT user_id, sum(d_allowance) a, sum(d_awarded) aw, sum(d_purchased) pr,
			sum(d_pool_used) pu, max(allowance_period) ap, max(grant_month) gm,
			max(occurred_at) FILTER (WHERE kind IN ('usage', 'hold')) last_use
		FROM ins WHERE user_id IS NOT NULL AND kind NOT IN ('park', 'resume') GROUP BY user_id) d
	WHERE users.id = d.user_id
), parked AS (
	-- What users left in projects they moved out of (parked.go): park
	-- events add to the entry of their project, resume events take it
	-- back; sums and greatest(), so the order within a batch is
	-- irrelevant. Only for users that still exist (no foreign key: an
	-- event replayed after a deletion must not fail the batch).
	INSERT INTO parked_allowances AS s (user_id, project_id, allowance_remaining, allowance_period, pool_used, parked)
	SELECT d.user_id, d.project_id, d.a, d.ap, d.pu, d.n
	FROM (SELECT user_id, project_id, sum(d_allowance) a, coalesce(max(allowance_period), -1) ap,
			sum(d_pool_used) pu, sum(CASE WHEN kind = 'park' THEN 1 ELSE -1 END) n
		FROM ins WHERE kind IN ('park', 'resume') AND user_id IS NOT NULL AND project_id IS NOT NULL
		GROUP BY user_id, project_id) d
	WHERE EXISTS (SELECT 1 FROM users WHERE users.id = d.user_id)
	ON CONFLICT (user_id, project_id) DO UPDATE SET
		allowance_remaining = s.allowance_remaining + EXCLUDED.allowance_remaining,
		allowance_period = greatest(s.allowance_period, EXCLUDED.allowance_period),
		pool_used = s.pool_used + EXCLUDED.pool_used,
		parked = s.parked + EXCLUDED.parked
), pool_deltas AS (
	UPDATE projects SET pool_balance = projects.pool_balance + d.pl
	FROM (SELECT project_id, sum(d_pool) pl FROM ins
		WHERE project_id IS NOT NULL AND d_pool <> 0 GROUP BY project_id) d
	WHERE projects.id = d.project_id
), usage_rollup AS (
	-- Only the usage, hold and void events inserted just now, so replays
	-- never double count. A variable-cost request has a hold and a usage
	-- event: the hold's deltas count as spent, its usage event's refunds as
	-- given back, so the bucket columns net them. A void undoes a charge
	-- whose request was refused after all: its negative cost and its
	-- refunds net the charge's. Requests come from usage events only.
	-- Grouping makes each key appear once, as ON CONFLICT DO UPDATE requires.
	-- The names are not updated: they are fixed for a given user and project
	-- id once there is usage, and leaving indexed columns alone keeps the
	-- update HOT (no index writes), which the reconciler's throughput needs.
	INSERT INTO usage_daily AS r (day, user_id, project_id, model, username, project_name,
		requests, credits, allowance, pool, awarded, purchased)
	SELECT (occurred_at AT TIME ZONE 'UTC')::date, user_id, coalesce(project_id, 0), coalesce(model, ''),
		max(username), coalesce(max(project_name), ''), count(*) FILTER (WHERE kind = 'usage'),
		coalesce(sum(cost) FILTER (WHERE kind IN ('usage', 'void')), 0),
		0 - sum(d_allowance), 0 - sum(d_pool), 0 - sum(d_awarded), 0 - sum(d_purchased)
	FROM ins WHERE kind IN ('usage', 'hold', 'void') AND user_id IS NOT NULL
	GROUP BY 1, 2, 3, 4
	ON CONFLICT (day, user_id, project_id, model) DO UPDATE SET
		requests = r.requests + EXCLUDED.requests,
		credits = r.credits + EXCLUDED.credits,
		allowance = r.allowance + EXCLUDED.allowance,
		pool = r.pool + EXCLUDED.pool,
		awarded = r.awarded + EXCLUDED.awarded,
		purchased = r.purchased + EXCLUDED.purchased
)
SELECT count(*) FROM ins`

// applyEvents records events in the ledger and updates balances, in the
// caller's transaction, each event at most once however often it is applied.
// It returns how many were new. Texts Postgres would refuse are cleaned
// first (storableTexts), so a text never costs the ledger a money event.
func (e *Engine) applyEvents(ctx context.Context, tx pgx.Tx, events []Event) (int64, error) {
	if len(events) == 0 {
		return 0, nil
	}
	events = e.storableTexts(events)
	// The staging table lives per connection and empties itself at commit.
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS event_staging
		(LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`); err != nil {
		return 0, fmt.Errorf("staging table: %w", err)
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"event_staging"}, eventCopyColumns,
		pgx.CopyFromSlice(len(events), func(i int) ([]any, error) {
			e := &events[i]
			return []any{e.ID, e.Kind, e.At, nullID(e.UserID), nullText(e.Username),
				nullID(e.ProjectID), nullText(e.ProjectName), int64(e.Cost), int64(e.Allowance),
				int64(e.Pool), int64(e.Awarded), int64(e.Purchased), int64(e.PoolUsed),
				nullInt(e.AllowancePeriod, e.HasPeriod), nullInt(e.GrantMonth, e.HasGrant),
				nullText(e.Request), nullText(e.Actor), nullText(e.Note),
				nullText(e.Model), nullInt(e.InputUnits, e.HasDetail && e.Kind == KindUsage),
				nullInt(e.OutputUnits, e.HasDetail && e.Kind == KindUsage), nullInt(int64(e.Reserved), e.HasDetail),
				nullInt(e.UpstreamStatus, e.HasDetail && e.Kind == KindUsage && e.UpstreamStatus >= 0),
				nullInt(e.DurationMs, e.HasDetail && e.Kind == KindUsage),
				nullInt(int64(e.Shortfall), e.HasDetail && e.Kind == KindUsage),
				nullInt(int64(e.Forfeited), e.HasDetail && e.Kind == KindUsage), nullText(e.ServedModel)}, nil
		}))
	if err != nil {
		return 0, fmt.Errorf("copy events: %w", err)
	}
	var n int64
	if err := tx.QueryRow(ctx, applyEventsSQL).Scan(&n); err != nil {
		return 0, fmt.Errorf("apply events: %w", err)
	}
	return n, nil
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

func nullText(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullInt(v int64, ok bool) any {
	if !ok {
		return nil
	}
	return v
}

// Bounds of the texts only a corrupt event can exceed: names pass ValidName
// (63 bytes), ids are made by EventIDs, kinds are constants.
const (
	maxStoredName = 200
	maxEventID    = 128
	maxEventKind  = 32
)

// storable reports whether Postgres takes s as text within max bytes: valid
// UTF-8 without NUL. (Other control characters are storable; the texts
// admins type keep their line breaks.)
func storable(s string, max int) bool {
	return len(s) <= max && utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// checkRow refuses an event Postgres could never take for a reason other
// than its texts (which storableTexts cleans): an id or kind that is not a
// short printable text (the id is the ledger's idempotency key, so it is
// never altered), a time outside Postgres's range, an upstream status that
// does not fit its int column. Such an event is malformed; it is checked
// in Go because pgx or Postgres would report it in ways hard to tell from
// an outage.
func checkRow(ev *Event) error {
	switch {
	case CleanText(ev.ID, maxEventID) != ev.ID:
		return fmt.Errorf("event id %q is not a printable text of at most %d bytes", CleanText(ev.ID, maxEventID), maxEventID)
	case CleanText(ev.Kind, maxEventKind) != ev.Kind:
		return fmt.Errorf("kind %q is not a printable text of at most %d bytes", CleanText(ev.Kind, maxEventKind), maxEventKind)
	case ev.At.Year() < 1970 || ev.At.Year() > 9999:
		return fmt.Errorf("time %d ms is outside the years 1970 to 9999", ev.At.UnixMilli())
	case ev.UpstreamStatus < math.MinInt32 || ev.UpstreamStatus > math.MaxInt32:
		return fmt.Errorf("upstream status %d does not fit", ev.UpstreamStatus)
	}
	return nil
}

// eventText is one text field of an event, for storableTexts.
type eventText struct {
	name string
	s    *string
	max  int
}

// texts lists ev's text fields, pointing into ev.
func (ev *Event) texts() [7]eventText {
	return [...]eventText{{"username", &ev.Username, maxStoredName}, {"project_name", &ev.ProjectName, maxStoredName},
		{"request", &ev.Request, MaxRequestLabel}, {"actor", &ev.Actor, MaxActorLength},
		{"note", &ev.Note, MaxNoteLength}, {"model", &ev.Model, MaxModelName},
		{"served_model", &ev.ServedModel, MaxModelName}}
}

// storableTexts returns events with every text Postgres would refuse made
// storable by CleanText, logging a warning for each. Gateways and the admin
// API clean or refuse texts before they reach Redis, so this only fires for
// an event written by a buggy or older gateway, or straight into the
// stream; without it one such text would make Postgres refuse the whole
// batch. The caller's slice is left alone: it is copied when something
// changes.
func (e *Engine) storableTexts(events []Event) []Event {
	out := events
	for i := range events {
		for j, f := range events[i].texts() {
			if storable(*f.s, f.max) {
				continue
			}
			if &out[0] == &events[0] {
				out = append([]Event(nil), events...)
			}
			clean := CleanText(*f.s, f.max)
			*out[i].texts()[j].s = clean
			e.log.Warn("event text is not storable in Postgres; recorded cleaned",
				zap.String("event", events[i].ID), zap.String("field", f.name), zap.Int("bytes", len(*f.s)),
				zap.String("recorded", clean))
		}
	}
	return out
}

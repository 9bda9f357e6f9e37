package metering

import (
	"context"
	"encoding/base64"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// The unusual-usage report: users whose usage in a window (one UTC day, or
// seven) is more than k times what their own recent days predict. It reads
// the daily rollup (usage_daily) like the usage report, so its cost depends
// on users × days, never on the number of events.

// ReportWindow is the span of an unusual-usage report.
type ReportWindow string

const (
	// WindowDay is one UTC day.
	WindowDay ReportWindow = "day"
	// WindowWeek is seven UTC days ending with the report's date.
	WindowWeek ReportWindow = "week"
)

// BaselineDays is how many UTC days before the window the baseline covers.
const BaselineDays = 28

// Factor is a multiplier with at most six decimals, in millionths
// (5 is 5_000_000), parsed and printed exactly like Credits.
type Factor int64

// DefaultFactor is k when a report names none.
const DefaultFactor Factor = 5_000_000

// MaxFactor bounds k; a larger one reports only users without a baseline.
const MaxFactor Factor = 1_000_000 * 1_000_000

// ParseFactor reads a decimal such as "5" or "2.5" exactly.
func ParseFactor(s string) (Factor, error) {
	c, err := ParseCredits(s)
	return Factor(c), err
}

func (f Factor) String() string { return Credits(f).String() }

// MarshalJSON writes the factor as an exact JSON number.
func (f Factor) MarshalJSON() ([]byte, error) { return Credits(f).MarshalJSON() }

// UnusualReason says why a row is in the report.
type UnusualReason string

const (
	// ReasonSpike: a full 28-day baseline, and the window's usage is above
	// k × its median × the window's days.
	ReasonSpike UnusualReason = "spike"
	// ReasonShortHistory: the user's first usage is fewer than 28 days
	// before the window, so the median covers only the days since; the
	// usage is above k × that median × the window's days.
	ReasonShortHistory UnusualReason = "short_history"
	// ReasonZeroMedian: the median is 0 (no usage on at least half of the
	// days of the baseline), so any usage is more than k times it.
	ReasonZeroMedian UnusualReason = "zero_median"
	// ReasonNoHistory: the user's first usage is in the window: there is
	// nothing to compare it with.
	ReasonNoHistory UnusualReason = "no_history"
)

// UnusualQuery selects an unusual-usage report.
//
// Days are UTC days, as the rollup keeps them. The window is Date alone
// (WindowDay) or the seven days ending with Date (WindowWeek). The
// baseline is the BaselineDays days before the window, counted from the
// user's first day with usage in the rollup when that is later ("history
// days"); a day without usage counts as 0. A user is reported when its
// window credits are at least MinCredits and more than
// Factor × median × (days in the window): for a week, seven times the
// usual day. With no history or a zero median every usage above 0
// qualifies, and the reason says so.
type UnusualQuery struct {
	Window     ReportWindow // "" means WindowDay
	Date       time.Time    // the window's last UTC day; zero means today (UTC, by the engine clock)
	Factor     Factor       // k; 0 means DefaultFactor
	MinCredits Credits      // least window usage worth reporting, default 0
	Project    string       // the user's current project: a name, ProjectNone, or "" for any
	Limit      int          // page size 1..MaxUserLimit; 0 means DefaultUserLimit
	Cursor     string       // a previous page's next cursor; "" for the first
}

// UnusualRow is one reported user.
type UnusualRow struct {
	User     string
	Project  string // the user's current project, "" for none
	Active   bool
	Credits  Credits // charged in the window (a day's voids counted, never below 0)
	Requests int64
	// HistoryDays is how many of the baseline days the median covers
	// (BaselineDays unless the user's first usage is more recent).
	HistoryDays int
	// Median2 is twice the median daily credits over the history days,
	// exact (the median of an even count is the mean of the middle two).
	Median2 Credits
	Reason  UnusualReason
}

// Median is the median daily credits, rounded down to the micro-credit.
func (r *UnusualRow) Median() Credits { return r.Median2 / 2 }

// Baseline is the median times the window's days, rounded down: the usage
// the window would have had on usual days.
func (r *UnusualRow) Baseline(days int) Credits { return r.Median2 * Credits(days) / 2 }

// Ratio is Credits / (median × days) as a decimal rounded down to two
// places ("57.38", "5"); ok is false when the median is 0 (no ratio).
func (r *UnusualRow) Ratio(days int) (ratio string, ok bool) {
	if r.Median2 <= 0 || days <= 0 {
		return "", false
	}
	// In hundredths: 200 × credits / (median2 × days), in big integers
	// because a week's credits times 200 can pass 2^63.
	h := new(big.Int).Mul(big.NewInt(int64(r.Credits)), big.NewInt(200))
	h.Quo(h, new(big.Int).Mul(big.NewInt(int64(r.Median2)), big.NewInt(int64(days))))
	s := h.String()
	if len(s) < 3 {
		s = strings.Repeat("0", 3-len(s)) + s
	}
	whole, frac := strings.TrimLeft(s[:len(s)-2], "0"), strings.TrimRight(s[len(s)-2:], "0")
	if whole == "" {
		whole = "0"
	}
	if frac != "" {
		whole += "." + frac
	}
	return whole, true
}

// UnusualReport is a page of the report with the days it covers.
type UnusualReport struct {
	Window       ReportWindow
	Factor       Factor
	MinCredits   Credits
	From, To     time.Time // the window: From inclusive, To exclusive (UTC days)
	BaselineFrom time.Time // the baseline is [BaselineFrom, From)
	Rows         []UnusualRow
	Next         string // the next page's cursor, "" on the last
}

// Days is the number of UTC days in the window.
func (w ReportWindow) Days() int {
	if w == WindowWeek {
		return 7
	}
	return 1
}

// unusualCursor is the last row of a page (its credits and username) and
// the query it belongs to, so that every page of one listing covers the
// same days even when the listing crosses midnight.
type unusualCursor struct {
	query    string // unusualQueryKey of the first page
	credits  Credits
	username string
}

func (c *unusualCursor) encode() string {
	s := c.query + "|" + strconv.FormatInt(int64(c.credits), 10) + "|" + c.username
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

func parseUnusualCursor(s string) (*unusualCursor, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, false
	}
	parts := strings.Split(string(b), "|")
	if len(parts) != 3 || !ValidName(parts[2]) {
		return nil, false
	}
	n, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || n <= 0 {
		return nil, false
	}
	return &unusualCursor{query: parts[0], credits: Credits(n), username: parts[2]}, true
}

// unusualQueryKey identifies a normalized query in its cursors.
func unusualQueryKey(q *UnusualQuery) string {
	return strings.Join([]string{string(q.Window), q.Date.Format(time.DateOnly), q.Factor.String(),
		q.MinCredits.String(), q.Project}, " ")
}

// normalize fills defaults and checks every value; a cursor supplies the
// date of the listing it continues when the query names none.
func (q *UnusualQuery) normalize(now time.Time) (*unusualCursor, error) {
	switch q.Window {
	case "":
		q.Window = WindowDay
	case WindowDay, WindowWeek:
	default:
		return nil, invalid("window", `must be "day" or "week"`)
	}
	if q.Factor == 0 {
		q.Factor = DefaultFactor
	}
	if q.Factor < 1_000_000 || q.Factor > MaxFactor {
		return nil, invalid("k", "must be a number from 1 to 1000000 with at most 6 decimals")
	}
	if q.MinCredits < 0 || q.MinCredits > MaxCredits {
		return nil, invalid("min_credits", "must be credits from 0 up, at most 6 decimals")
	}
	if q.Project != "" && q.Project != ProjectNone && !ValidName(q.Project) {
		return nil, invalid("project", `must be a project name or "none"`)
	}
	if q.Limit == 0 {
		q.Limit = DefaultUserLimit
	}
	if q.Limit < 1 || q.Limit > MaxUserLimit {
		return nil, invalid("limit", "must be a whole number from 1 to 1000")
	}
	var c *unusualCursor
	if q.Cursor != "" {
		var ok bool
		if c, ok = parseUnusualCursor(q.Cursor); !ok {
			return nil, invalid("cursor", "is not a cursor this report returned")
		}
		if f := strings.Split(c.query, " "); q.Date.IsZero() && len(f) > 1 {
			q.Date, _ = time.Parse(time.DateOnly, f[1]) // the key is compared below
		}
	}
	today := UTCDay(now)
	if q.Date.IsZero() {
		q.Date = today
	}
	if !q.Date.Equal(UTCDay(q.Date)) {
		return nil, invalid("date", "must be a UTC day")
	}
	if q.Date.After(today) {
		return nil, invalid("date", fmt.Sprintf("must not be after today (%s, UTC)", today.Format(time.DateOnly)))
	}
	if c != nil && c.query != unusualQueryKey(q) {
		return nil, invalid("cursor", "belongs to a report with other parameters (window, date, k, min_credits or project)")
	}
	return c, nil
}

// UnusualUsage returns a page of the unusual-usage report. Bad values are
// *InvalidError naming the field.
func (e *Engine) UnusualUsage(ctx context.Context, q UnusualQuery) (UnusualReport, error) {
	var rows []UnusualRow
	rep, err := e.unusualUsage(ctx, q, false, func(row UnusualRow) error {
		rows = append(rows, row)
		return nil
	})
	rep.Rows = rows
	return rep, err
}

// EachUnusualUsage calls fn with every row of the report (q.Limit is
// ignored, q.Cursor must be empty) as Postgres sends it, so a CSV can be
// streamed without holding the report; the answer has no Rows.
func (e *Engine) EachUnusualUsage(ctx context.Context, q UnusualQuery, fn func(UnusualRow) error) (UnusualReport, error) {
	if q.Cursor != "" {
		return UnusualReport{}, invalid("cursor", "the whole report takes no cursor")
	}
	return e.unusualUsage(ctx, q, true, fn)
}

// unusualUsage runs the report: a page of q.Limit rows, or every row.
func (e *Engine) unusualUsage(ctx context.Context, q UnusualQuery, all bool, fn func(UnusualRow) error) (UnusualReport, error) {
	c, err := q.normalize(e.cfg.Now())
	if err != nil {
		return UnusualReport{}, err
	}
	rep := UnusualReport{Window: q.Window, Factor: q.Factor, MinCredits: q.MinCredits,
		From: q.Date.AddDate(0, 0, 1-q.Window.Days()), To: q.Date.AddDate(0, 0, 1)}
	rep.BaselineFrom = rep.From.AddDate(0, 0, -BaselineDays)
	limit := -1 // every row
	if !all {
		limit = q.Limit + 1 // one more tells whether there is a next page
	}
	var last UnusualRow
	n := 0
	err = unusualRows(ctx, e.db, &rep, &q, c, limit, func(row UnusualRow) error {
		if n++; !all && n > q.Limit {
			rep.Next = (&unusualCursor{query: unusualQueryKey(&q), credits: last.Credits, username: last.User}).encode()
			return nil
		}
		last = row
		return fn(row)
	})
	if err != nil {
		return rep, fmt.Errorf("unusual usage report: %w", err)
	}
	return rep, nil
}

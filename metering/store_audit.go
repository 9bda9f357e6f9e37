package metering

import (
	"context"
	"encoding/json"
	"strconv"
	"time"
)

// AuditEntry records one admin write: who, what, on whom, with details
// (the note, changed fields). Key values never go in here.
type AuditEntry struct {
	ID      int64          `json:"-"` // set when read back; orders entries of the same instant
	At      time.Time      `json:"at"`
	Actor   string         `json:"actor"`
	Action  string         `json:"action"`
	Target  string         `json:"target"`
	Details map[string]any `json:"details"`
}

func insertAudit(ctx context.Context, q querier, e AuditEntry) error {
	details := e.Details
	if details == nil {
		details = map[string]any{}
	}
	b, err := json.Marshal(details)
	if err != nil {
		return err
	}
	_, err = q.Exec(ctx, `INSERT INTO audit_log (actor, action, target, details) VALUES ($1, $2, $3, $4)`,
		e.Actor, e.Action, e.Target, b)
	return err
}

// listAudit returns up to limit entries matching f, newest first, after
// f.Before (keyset pagination on (at, id), served by the (at) index or the
// (actor, at) and (target, at) ones when filtered).
func listAudit(ctx context.Context, q querier, f AuditFilter, limit int) ([]AuditEntry, error) {
	var args []any
	where := ` WHERE true`
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Actor != "" {
		where += ` AND actor = ` + arg(f.Actor)
	}
	if f.User != "" {
		// Project actions name a project as their target, which may share a username's spelling.
		where += ` AND target = ` + arg(f.User) + ` AND action NOT LIKE 'project.%'`
	}
	if f.From != nil {
		where += ` AND at >= ` + arg(*f.From)
	}
	if f.To != nil {
		where += ` AND at < ` + arg(*f.To)
	}
	if f.Before != nil {
		where += ` AND (at, id) < (` + arg(f.Before.At) + `, ` + arg(f.Before.ID) + `)`
	}
	rows, err := q.Query(ctx, `SELECT id, at, actor, action, coalesce(target, ''), details FROM audit_log`+
		where+` ORDER BY at DESC, id DESC LIMIT `+arg(limit), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var details []byte
		if err := rows.Scan(&e.ID, &e.At, &e.Actor, &e.Action, &e.Target, &details); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(details, &e.Details); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

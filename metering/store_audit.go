package metering

import (
	"context"
	"encoding/json"
	"time"
)

// AuditEntry records one admin write: who, what, on whom, with details
// (the note, changed fields). Key values never go in here.
type AuditEntry struct {
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

package metering

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.uber.org/zap"
)

// ChargeStatus is the outcome of a charge.
type ChargeStatus int

const (
	// Charged: the cost was taken.
	Charged ChargeStatus = iota
	// Insufficient: all buckets together cannot pay; nothing was taken.
	Insufficient
	// KeyRefused: unknown, malformed, rotated, expired or deactivated key.
	// Callers answer the same for every case.
	KeyRefused
)

// Split says how much of a charge came from each bucket.
type Split struct {
	Allowance, Pool, Awarded, Purchased Credits
}

// ChargeResult is what a charge did.
type ChargeResult struct {
	Status   ChargeStatus
	UserID   int64
	Username string
	Project  string // "" when unassigned
	// Remaining is the effective credits after the charge, or, when
	// Insufficient, the effective credits that could not cover it.
	Remaining Credits
	Taken     Split
	// Lease, when the charge was tracked (ChargeTracked), marks the request
	// as in flight until Release.
	Lease Lease
}

// Charge authenticates key and takes cost from the user's buckets in order,
// in one atomic script call, appending the usage event to the stream.
// request labels the event (e.g. "POST /v1/chat/completions").
// Errors wrapping ErrUnavailable mean Redis could not be reached: fail closed.
//
// The charge is final at admission and records nothing in flight (the fixed
// charge script, fixed_charge.lua): the user may be deleted while the
// request is served, and a charge whose answer is lost is not undone (the
// error wraps ErrOutcomeUnknown). ChargeTracked is the charge that can be.
func (e *Engine) Charge(ctx context.Context, key string, cost Credits, request string) (ChargeResult, error) {
	return e.charge(ctx, key, cost, request, 0)
}

// ChargeTracked is Charge that also records the request as in flight for
// up to lease (0: not tracked, as Charge), so the user cannot be deleted
// under it, and so a charge whose answer is lost is undone (cancel.go: the
// in-flight member says what it took). The caller hands the result's Lease
// to Release when the response is done.
func (e *Engine) ChargeTracked(ctx context.Context, key string, cost Credits, request string, lease time.Duration) (ChargeResult, error) {
	return e.charge(ctx, key, cost, request, lease)
}

func (e *Engine) charge(ctx context.Context, key string, cost Credits, request string, lease time.Duration) (ChargeResult, error) {
	if !WellFormedKey(key) {
		return ChargeResult{Status: KeyRefused}, nil
	}
	if cost < 0 || cost > MaxCredits {
		return ChargeResult{}, fmt.Errorf("charge: cost %d out of range", cost)
	}
	tracked := lease > 0
	h := e.hasher.Hash(key)
	// Each retry follows a repair (stale cache dropped, state loaded), so
	// three attempts cover a cold Redis plus a concurrent admin change.
	for attempt := 0; attempt < 3; attempt++ {
		ent, err := e.resolve(ctx, h)
		if err != nil || ent == nil {
			return ChargeResult{Status: KeyRefused}, err
		}
		now := e.cfg.Now()
		start, month := ent.periodArgs(now)
		id := e.ids.Next()
		args := trackedChargeArgs{Charge: fixedChargeArgs{UserKey: ent.userKey, ProjectKey: ent.projectKey,
			EventsKey: ent.shard.Events(), KeyHash: ent.keyArg, UserVersion: ent.versionArg, ProjectVersion: ent.projectVer,
			NowMs: now.UnixMilli(), AllowanceStart: start, Month: month, Cost: cost, EventID: id, Request: request,
			UserID: ent.userArg}}
		var c *scriptCall
		if tracked {
			args.FlightKey, args.RecordKey, args.DeadlineMs = ent.flightKey, ent.shard.Reservation(id), now.Add(lease).UnixMilli()
			c = getCall(trackedChargeScript)
			args.fill(c)
		} else {
			c = getCall(fixedChargeScript)
			args.Charge.fill(c)
		}
		err = e.runner.Run(ctx, c)
		var ans fixedChargeAnswer
		if err == nil {
			ans, err = parseChargeAnswer(c.Res, tracked)
		}
		putCall(c)
		if err != nil {
			switch {
			case tracked && errors.Is(err, ErrOutcomeUnknown):
				// The caller refuses the request: it must not stay charged.
				e.cancelChargeLater(lostCharge{id: id, request: request, userID: ent.userID, projectID: ent.projectID, shard: ent.shard,
					userKey: ent.userKey, projectKey: ent.projectKey, flightKey: ent.flightKey, deadline: args.DeadlineMs})
			case errors.Is(err, ErrOutcomeUnknown):
				// Nothing records what an untracked charge took: it stays,
				// if it ran. Its id finds it in the ledger.
				e.log.Warn("an untracked charge's answer was lost; if it ran it stays charged",
					zap.String("charge", id), zap.String("user", ent.username), zap.Error(err))
			}
			return ChargeResult{}, err
		}
		switch ans.Status {
		case scriptOK:
			out := ChargeResult{Status: Charged, UserID: ent.userID, Username: ent.username, Project: ent.project,
				Remaining: ans.Remaining, Taken: ans.Taken}
			if tracked {
				out.Lease = Lease{flightKey: ent.flightKey, member: flightMember(id, ent.projectID, ans.Period, ans.Taken),
					shard: ent.shard.Index()}
			}
			return out, nil
		case scriptInsufficient:
			return ChargeResult{Status: Insufficient, UserID: ent.userID, Username: ent.username, Project: ent.project,
				Remaining: ans.Remaining}, nil
		case scriptRefused:
			return ChargeResult{Status: KeyRefused}, nil
		case scriptDeleted:
			// Deleted, or moved to another shard: the lookup says which.
			e.cache.drop(h)
			continue
		case scriptCancelled:
			// Only an event id reused after a cancel gets here: ids are unique.
			return ChargeResult{}, fmt.Errorf("%w: charge %s was cancelled", ErrUnavailable, id)
		}
		refused, err := e.repair(ctx, h, ent, ans.Status)
		if err != nil {
			return ChargeResult{}, err
		}
		if refused {
			return ChargeResult{Status: KeyRefused}, nil
		}
	}
	return ChargeResult{}, fmt.Errorf("%w: charge did not settle after repeated cache refreshes", ErrUnavailable)
}

// repair acts on a charge script's answer that asks for a retry: a stale cache
// entry is dropped, a user or project missing from Redis is loaded.
// refused: the user no longer exists. Other answers are errors.
func (e *Engine) repair(ctx context.Context, h KeyHash, ent *userEntry, code int64) (refused bool, err error) {
	switch code {
	case scriptStale:
		e.cache.drop(h)
	case scriptNoUser:
		e.cache.drop(h)
		_, found, err := e.loadUser(ctx, ent.userID)
		return err == nil && !found, err
	case scriptNoProject:
		return false, e.loadProject(ctx, ent.projectID)
	default:
		return false, fmt.Errorf("charge script answered status %d", code)
	}
	return false, nil
}

// flightMember is the in-flight set member a tracked charge writes (see
// fixed_charge.lua): its id, project, allowance period and what it took from
// each bucket, so a lost charge can be undone from the member alone.
func flightMember(id string, projectID, period int64, t Split) string {
	// Built on the stack: the string is the one allocation.
	var buf [128]byte
	b := append(buf[:0], id...)
	for _, v := range [...]int64{projectID, period, int64(t.Allowance), int64(t.Pool), int64(t.Awarded), int64(t.Purchased)} {
		b = strconv.AppendInt(append(b, '|'), v, 10)
	}
	return string(b)
}

func formatInt(v int64) string { return strconv.FormatInt(v, 10) }

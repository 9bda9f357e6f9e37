package metering

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// Hooks for the direct script tests (fixed_charge_script_test.go): the
// fixed-charge script run through its typed boundary without an Engine,
// and charge.lua's untracked charge mode with the same arguments, for
// comparisons.

type (
	FixedChargeArgs   = fixedChargeArgs
	TrackedChargeArgs = trackedChargeArgs
	FixedChargeAnswer = fixedChargeAnswer
)

// Script status codes, as the tests expect them.
const (
	ScriptOK           = scriptOK
	ScriptInsufficient = scriptInsufficient
	ScriptNoUser       = scriptNoUser
	ScriptStale        = scriptStale
	ScriptRefused      = scriptRefused
	ScriptNoProject    = scriptNoProject
	ScriptDeleted      = scriptDeleted
	ScriptCancelled    = scriptCancelled
)

// RunFixedCharge runs fixed_charge.lua once (EVALSHA, EVAL on NOSCRIPT).
func RunFixedCharge(ctx context.Context, rdb redis.Scripter, a FixedChargeArgs) (FixedChargeAnswer, error) {
	var c scriptCall
	a.fill(&c)
	res, err := fixedChargeScript.Run(ctx, rdb, c.Keys, c.Args...).Int64Slice()
	if err != nil {
		return FixedChargeAnswer{}, err
	}
	return parseFixedChargeAnswer(res)
}

// RunChargeMode runs charge.lua's "charge" mode, untracked, with the same
// arguments: what fixed_charge.lua replaces. Its answer has one element
// more (the allowance period), which is dropped.
func RunChargeMode(ctx context.Context, rdb redis.Scripter, a FixedChargeArgs) (FixedChargeAnswer, error) {
	res, err := chargeScript.Run(ctx, rdb, []string{a.UserKey, a.ProjectKey, a.EventsKey},
		"charge", a.KeyHash, a.UserVersion, a.ProjectVersion, a.NowMs, a.AllowanceStart, a.Month,
		int64(a.Cost), a.EventID, a.Request, a.UserID).Int64Slice()
	if err != nil {
		return FixedChargeAnswer{}, err
	}
	if len(res) == 7 {
		res = res[:6]
	}
	return parseFixedChargeAnswer(res)
}

// RunTrackedCharge runs the tracked charge script once.
func RunTrackedCharge(ctx context.Context, rdb redis.Scripter, a TrackedChargeArgs) (FixedChargeAnswer, error) {
	var c scriptCall
	a.fill(&c)
	res, err := trackedChargeScript.Run(ctx, rdb, c.Keys, c.Args...).Int64Slice()
	if err != nil {
		return FixedChargeAnswer{}, err
	}
	return parseTrackedChargeAnswer(res)
}

// RunChargeModeTracked runs charge.lua's "charge" mode with a lease, with
// the same arguments: what the tracked charge script replaces.
func RunChargeModeTracked(ctx context.Context, rdb redis.Scripter, a TrackedChargeArgs) (FixedChargeAnswer, error) {
	f := a.Charge
	res, err := chargeScript.Run(ctx, rdb, []string{f.UserKey, f.ProjectKey, f.EventsKey, a.FlightKey, a.RecordKey},
		"charge", f.KeyHash, f.UserVersion, f.ProjectVersion, f.NowMs, f.AllowanceStart, f.Month,
		int64(f.Cost), f.EventID, f.Request, f.UserID, a.DeadlineMs).Int64Slice()
	if err != nil {
		return FixedChargeAnswer{}, err
	}
	return parseTrackedChargeAnswer(res)
}

package metering

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// Hooks for the direct script tests (fixed_charge_script_test.go,
// script_model_random_test.go): the fixed and tracked charge scripts run
// through their typed boundary without an Engine.

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

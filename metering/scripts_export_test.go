package metering

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// Hooks for the direct script tests (scripts_test.go): each script run
// once through its typed boundary, without an Engine. Each answers the raw
// reply and the parsed one (the parser must accept what the script gave).

type (
	ReserveArgs    = reserveArgs
	ReserveAnswer  = reserveAnswer
	PeekArgs       = peekArgs
	PeekAnswer     = peekAnswer
	RefreshArgs    = refreshArgs
	RefreshAnswer  = refreshAnswer
	AdjustUserArgs = adjustUserArgs
	AdjustAnswer   = adjustAnswer
)

// More status codes, as the tests expect them.
const (
	ScriptTooLarge   = scriptTooLarge
	ScriptStalePrice = scriptStalePrice
)

// filler is a script's typed arguments.
type filler interface{ fill(*scriptCall) }

func runRaw(ctx context.Context, rdb redis.Scripter, s *luaScript, a filler) ([]int64, error) {
	var c scriptCall
	a.fill(&c)
	return s.Run(ctx, rdb, c.Keys, c.Args...).Int64Slice()
}

// RunReserve runs reserve.lua once.
func RunReserve(ctx context.Context, rdb redis.Scripter, a ReserveArgs) ([]int64, ReserveAnswer, error) {
	res, err := runRaw(ctx, rdb, reserveScript, &a)
	if err != nil {
		return nil, ReserveAnswer{}, err
	}
	ans, err := parseReserveAnswer(res)
	return res, ans, err
}

// RunPeek runs peek.lua once.
func RunPeek(ctx context.Context, rdb redis.Scripter, a PeekArgs) ([]int64, PeekAnswer, error) {
	res, err := runRaw(ctx, rdb, peekScript, &a)
	if err != nil {
		return nil, PeekAnswer{}, err
	}
	ans, err := parsePeekAnswer(res)
	return res, ans, err
}

// RunRefresh runs refresh.lua once.
func RunRefresh(ctx context.Context, rdb redis.Scripter, a RefreshArgs) ([]int64, RefreshAnswer, error) {
	res, err := runRaw(ctx, rdb, refreshScript, &a)
	if err != nil {
		return nil, RefreshAnswer{}, err
	}
	ans, err := parseRefreshAnswer(res)
	return res, ans, err
}

// RunAdjustUser runs adjust_user.lua once.
func RunAdjustUser(ctx context.Context, rdb redis.Scripter, a AdjustUserArgs) ([]int64, AdjustAnswer, error) {
	res, err := runRaw(ctx, rdb, adjustUserScript, &a)
	if err != nil {
		return nil, AdjustAnswer{}, err
	}
	ans, err := parseAdjustUserAnswer(res)
	return res, ans, err
}

// The parsers, for the tests of shapes the scripts never give.
var (
	ParseReserveAnswer    = parseReserveAnswer
	ParsePeekAnswer       = parsePeekAnswer
	ParseRefreshAnswer    = parseRefreshAnswer
	ParseAdjustUserAnswer = parseAdjustUserAnswer
)

type (
	LeaseTakeArgs  = leaseTakeArgs
	LeaseEndArgs   = leaseEndArgs
	LeaseFlushArgs = leaseFlushArgs
	LeaseUse       = leaseUse
)

// RunLeaseFlush runs lease_flush.lua once and parses its answer.
func RunLeaseFlush(ctx context.Context, rdb redis.Scripter, a LeaseFlushArgs) (ended bool, err error) {
	res, err := runRaw(ctx, rdb, leaseFlushScript, &a)
	if err != nil {
		return false, err
	}
	return parseLeaseFlushAnswer(res)
}

// RunLeaseTake runs lease_take.lua once.
func RunLeaseTake(ctx context.Context, rdb redis.Scripter, a LeaseTakeArgs) ([]int64, error) {
	return runRaw(ctx, rdb, leaseTakeScript, &a)
}

// RunLeaseEnd runs lease_end.lua once.
func RunLeaseEnd(ctx context.Context, rdb redis.Scripter, a LeaseEndArgs) ([]int64, error) {
	return runRaw(ctx, rdb, leaseEndScript, &a)
}

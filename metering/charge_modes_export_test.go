package metering

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// charge.lua's modes with the arguments of the scripts that replace them,
// for the randomized comparison (scripts_match_charge_test.go) while
// charge.lua still exists.

var chargeScript = mustScriptWithPrelude("charge.lua")

func RunChargeModeReserve(ctx context.Context, rdb redis.Scripter, a ReserveArgs) ([]int64, error) {
	return chargeScript.Run(ctx, rdb, []string{a.UserKey, a.ProjectKey, a.EventsKey, a.FlightKey, a.RecordKey,
		a.LeasesKey, a.PriceVersionKey}, "reserve", a.KeyHash, a.UserVersion, a.ProjectVersion, a.NowMs,
		a.AllowanceStart, a.Month, int64(a.Amount), a.EventID, a.Request, a.UserID, a.DeadlineMs, a.Order,
		a.PriceVersion, a.Model, a.AllowanceEndMs).Int64Slice()
}

func RunChargeModePeek(ctx context.Context, rdb redis.Scripter, a PeekArgs, eventsKey string) ([]int64, error) {
	return chargeScript.Run(ctx, rdb, []string{a.UserKey, a.ProjectKey, eventsKey}, "peek", "", "", "", 0,
		a.AllowanceStart, a.Month, 0, "", "", "7").Int64Slice()
}

func RunChargeModeRefresh(ctx context.Context, rdb redis.Scripter, a RefreshArgs) ([]int64, error) {
	return chargeScript.Run(ctx, rdb, []string{a.UserKey, a.ProjectKey, a.EventsKey}, "refresh", "", "", "",
		a.NowMs, a.AllowanceStart, a.Month, 0, a.EventID, "", a.UserID).Int64Slice()
}

func RunChargeModeAdjust(ctx context.Context, rdb redis.Scripter, a AdjustUserArgs) ([]int64, error) {
	return chargeScript.Run(ctx, rdb, []string{a.UserKey, a.ProjectKey, a.EventsKey}, "adjust", "", "", "",
		a.NowMs, a.AllowanceStart, a.Month, int64(a.Delta), a.EventID, "", a.UserID, a.Field, a.Kind, a.Actor,
		a.Note).Int64Slice()
}

package metering_test

import (
	"testing"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// BenchmarkListUsers100k measures one filtered, sorted page of 50 users
// (Postgres query plus the live-balance and in-flight pipelines to Redis)
// among 100,000 users in 100 projects. Run with -bench; the target is
// well under 100 ms per page.
func BenchmarkListUsers100k(b *testing.B) {
	w := meteringtest.New(b, meteringtest.Options{})
	w.Seed100kUsers(b, false)
	for _, bc := range []struct {
		name string
		q    metering.UserQuery
	}{
		{"credits", metering.UserQuery{Sort: metering.SortCredits}},
		{"activity", metering.UserQuery{Sort: metering.SortActivity}},
		{"project_active_credits", metering.UserQuery{Project: "p042", Status: "active", Sort: metering.SortCredits}},
		{"search_credits", metering.UserQuery{Search: "77", Sort: metering.SortCredits}},
		{"rare_search_username", metering.UserQuery{Search: "09999", Sort: metering.SortUsername}},
		{"none_activity", metering.UserQuery{Project: metering.ProjectNone, Sort: metering.SortActivity}},
	} {
		benchFindUsers(b, w.Engine, bc.name, bc.q, false)
	}
}

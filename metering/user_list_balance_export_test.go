package metering

import "context"

// ZeroBalanceCandidatesForTest returns, in username order, the users the
// ledger proposes for a balance=zero listing, before Redis confirms them.
func (e *Engine) ZeroBalanceCandidatesForTest(ctx context.Context) ([]string, error) {
	now := e.cfg.Now()
	f, err := e.zeroBalanceFilter(ctx, now)
	if err != nil {
		return nil, err
	}
	q := UserQuery{Sort: SortUsername, Limit: MaxUserLimit, zero: f}
	users, err := listUsersPage(ctx, e.db, &q, nil, now)
	names := make([]string, len(users))
	for i, u := range users {
		names[i] = u.Username
	}
	return names, err
}

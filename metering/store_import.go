package metering

import (
	"context"
	"time"
)

// Bulk statements for ImportUsers: one round trip each, whatever the row
// count, because 10,000 single-row INSERTs would take seconds.

// projectsByName returns the named projects, locked against a
// concurrent delete until the transaction ends (q is a transaction) or
// unlocked (q is the pool, for a dry run).
func projectsByName(ctx context.Context, q querier, names []string, lock bool) (map[string]Project, error) {
	sql := `SELECT ` + projectColumns + ` FROM projects p WHERE p.name = ANY($1)`
	if lock {
		sql += ` FOR SHARE OF p`
	}
	rows, err := q.Query(ctx, sql, names)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]Project, len(names))
	for rows.Next() {
		p, err := scanProject(rows)
		if err != nil {
			return nil, err
		}
		out[p.Name] = p
	}
	return out, rows.Err()
}

// takenUsernames returns which of names already exist.
func takenUsernames(ctx context.Context, q querier, names []string) (map[string]bool, error) {
	rows, err := q.Query(ctx, `SELECT username FROM users WHERE username = ANY($1)`, names)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out[n] = true
	}
	return out, rows.Err()
}

// insertUsersBulk creates users with zero balances (money arrives through
// events, as for one user) and returns their ids by username (RETURNING
// order is not promised to follow the input's).
func insertUsersBulk(ctx context.Context, q querier, users []User) (map[string]int64, error) {
	names := make([]string, len(users))
	projects := make([]*int64, len(users))
	grants := make([]int64, len(users))
	grantMonths := make([]int64, len(users))
	partners := make([]bool, len(users))
	statuses := make([]string, len(users))
	for i := range users {
		u := &users[i]
		names[i], grants[i], grantMonths[i], partners[i] = u.Username, int64(u.MonthlyGrant), u.GrantMonth, u.Partner
		statuses[i] = "active"
		if !u.Active {
			statuses[i] = "inactive"
		}
		if u.ProjectID != 0 {
			projects[i] = &u.ProjectID
		}
	}
	rows, err := q.Query(ctx, `INSERT INTO users (username, project_id, monthly_grant, grant_month, partner, status)
		SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::boolean[], $6::text[])
		RETURNING id, username`, names, projects, grants, grantMonths, partners, statuses)
	if isUniqueViolation(err) {
		return nil, errUsernameRace
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ids := make(map[string]int64, len(users))
	for rows.Next() {
		var id int64
		var name string
		if err := rows.Scan(&id, &name); err != nil {
			return nil, err
		}
		ids[name] = id
	}
	if err := rows.Err(); err != nil {
		if isUniqueViolation(err) {
			return nil, errUsernameRace
		}
		return nil, err
	}
	return ids, nil
}

// insertKeysBulk stores the first key of each new user (nothing to revoke).
func insertKeysBulk(ctx context.Context, q querier, userIDs []int64, keys []APIKeyInfo) error {
	hashes := make([][]byte, len(keys))
	prefixes := make([]string, len(keys))
	sealed := make([][]byte, len(keys))
	created := make([]time.Time, len(keys))
	expires := make([]*time.Time, len(keys))
	for i := range keys {
		k := &keys[i]
		hashes[i], prefixes[i], sealed[i], created[i], expires[i] = k.Hash[:], k.Prefix, k.Sealed, k.CreatedAt, k.ExpiresAt
	}
	_, err := q.Exec(ctx, `INSERT INTO api_keys (user_id, lookup_hash, display_prefix, sealed, created_at, expires_at)
		SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::text[], $4::bytea[], $5::timestamptz[], $6::timestamptz[])`,
		userIDs, hashes, prefixes, sealed, created, expires)
	return err
}

// usersByIDs reads users back, in no particular order.
func usersByIDs(ctx context.Context, q querier, ids []int64) ([]User, error) {
	return queryUsers(ctx, q, `SELECT `+userColumns+userFrom+` WHERE u.id = ANY($1)`, ids)
}

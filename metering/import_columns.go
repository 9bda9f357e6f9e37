package metering

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// columnRole is what an import reads from a column.
type columnRole int

const (
	colUsername columnRole = iota + 1
	colProject
	colInitial // initial_credits, or awarded as a users export names it
	colPurchased
	colGrant
	colPartner
	colStatus
	colKeyExpires
	colGrantsPaid
	colIgnored
)

// importColumnRoles are the columns an import file may have. The first
// three roles are required (the contract's header is
// username,project,initial_credits); order is free. A file written by GET
// /users/export imports as it is: its awarded column gives the initial
// credits, and its columns that describe a user's state rather than what
// to create (balances that follow from usage, times, the old key) are
// accepted and not read.
var importColumnRoles = map[string]columnRole{
	"username": colUsername, "project": colProject, "initial_credits": colInitial, "awarded": colInitial,
	"purchased": colPurchased, "monthly_grant": colGrant, "partner": colPartner, "status": colStatus,
	"key_expires_at": colKeyExpires, "grants_paid_through": colGrantsPaid,
	"personal_credits": colIgnored, "effective_credits": colIgnored, "last_activity_at": colIgnored,
	"allowance_remaining": colIgnored, "pool_available": colIgnored, "created_at": colIgnored,
	"key_status": colIgnored, "key_created_at": colIgnored,
}

// ImportColumnKnown reports whether an import file may have the column
// (the admin API's tests hold every export column to it).
func ImportColumnKnown(name string) bool { _, ok := importColumnRoles[columnName(name)]; return ok }

// importColumnsHint lists what an import reads, for messages.
const importColumnsHint = "an import reads username, project and initial_credits (or awarded), and optionally purchased, " +
	"monthly_grant, partner, status, key_expires_at and grants_paid_through; the other columns of a users export are accepted and not read"

// importCols is a header read: where each role's column is, and the
// ignored columns' names.
type importCols struct {
	idx     map[columnRole]int
	ignored []string
}

func columnName(h string) string { return strings.ToLower(strings.TrimSpace(h)) }

// importColumns reads the header.
func importColumns(header []string) (importCols, error) {
	cols := importCols{idx: make(map[columnRole]int, len(header))}
	var unknown, twice []string
	named := map[columnRole]string{}
	for i, h := range header {
		name := columnName(h)
		role, ok := importColumnRoles[name]
		switch {
		case !ok:
			unknown = append(unknown, QuoteValue(strings.TrimSpace(h)))
		case role == colIgnored:
			if slices.Contains(cols.ignored, name) {
				twice = append(twice, fmt.Sprintf("The column %s is given twice", name))
			}
			cols.ignored = append(cols.ignored, name)
		case named[role] == name:
			twice = append(twice, fmt.Sprintf("The column %s is given twice", name))
		case named[role] != "":
			twice = append(twice, fmt.Sprintf("The columns %s and %s both give the initial credits; keep one", named[role], name))
		default:
			named[role], cols.idx[role] = name, i
		}
	}
	if len(unknown) > 0 {
		noun := "column"
		if len(unknown) > 1 {
			noun = "columns"
		}
		return cols, invalid("header", fmt.Sprintf("The header has the unknown %s %s; %s", noun, JoinAnd(unknown), importColumnsHint))
	}
	if len(twice) > 0 {
		return cols, invalid("header", twice[0])
	}
	var missing []string
	for _, c := range []struct {
		role columnRole
		name string
	}{{colUsername, "username"}, {colProject, "project"}, {colInitial, "initial_credits"}} {
		if _, ok := cols.idx[c.role]; !ok {
			missing = append(missing, c.name)
		}
	}
	if len(missing) > 0 {
		noun := "column"
		if len(missing) > 1 {
			noun = "columns"
		}
		return cols, invalid("header", fmt.Sprintf("The header lacks the %s %s; the first line must be the header, at least %s",
			noun, JoinAnd(missing), importHeaderHint))
	}
	sort.Strings(cols.ignored)
	return cols, nil
}

// JoinAnd joins items as "a", "a and b" or "a, b and c", for messages.
func JoinAnd(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

package admin

import (
	"sort"

	"github.com/tollgate/tollgate/metering"
)

// An import's answer shows, row by row and in total, what it writes, so a
// dry run is a preview an admin can check before the real import: the
// stored username, the project, the credits of each bucket, the grant, the
// partner flag, the status and the key's expiry.

func importValues(row *metering.ImportRow) *importValuesJSON {
	s := &row.Spec
	v := &importValuesJSON{InitialCredits: s.InitialCredits, Purchased: s.Purchased, MonthlyGrant: s.MonthlyGrant,
		Partner: s.Partner, UserStatus: "active", KeyExpiresAt: optionalTimeJSON(s.KeyExpiresAt)}
	if s.Project != "" {
		p := s.Project
		v.Project = &p
	}
	if row.Inactive {
		v.UserStatus = "inactive"
	}
	if row.GrantsPaidThrough > 0 {
		m := metering.FormatMonth(row.GrantsPaidThrough)
		v.GrantsPaidThrough = &m
	}
	return v
}

// importTotalsJSON adds up the valid rows. The parser refuses a file whose
// amounts add up to more than a balance may hold, so the sums are exact.
type importTotalsJSON struct {
	Users          int                      `json:"users"`
	InitialCredits metering.Credits         `json:"initial_credits"`
	Purchased      metering.Credits         `json:"purchased"`
	MonthlyGrant   metering.Credits         `json:"monthly_grant"`
	Partners       int                      `json:"partners"`
	Inactive       int                      `json:"inactive"`
	Projects       []importProjectTotalJSON `json:"projects"`
}

// importProjectTotalJSON is the part of the totals in one project (null:
// the users without a project).
type importProjectTotalJSON struct {
	Project        *string          `json:"project"`
	Users          int              `json:"users"`
	InitialCredits metering.Credits `json:"initial_credits"`
	Purchased      metering.Credits `json:"purchased"`
	MonthlyGrant   metering.Credits `json:"monthly_grant"`
}

// importTotals sums the rows that are valid (res has no error for them),
// per project in name order, users without a project last.
func importTotals(rows []metering.ImportRow, res []metering.ImportedRow) importTotalsJSON {
	t := importTotalsJSON{Projects: []importProjectTotalJSON{}}
	byProject := map[string]*importProjectTotalJSON{}
	var names []string
	for i := range rows {
		if res[i].Err != "" {
			continue
		}
		s := &rows[i].Spec
		t.Users++
		t.InitialCredits += s.InitialCredits
		t.Purchased += s.Purchased
		t.MonthlyGrant += s.MonthlyGrant
		if s.Partner {
			t.Partners++
		}
		if rows[i].Inactive {
			t.Inactive++
		}
		p := byProject[s.Project]
		if p == nil {
			p = &importProjectTotalJSON{}
			if s.Project != "" {
				name := s.Project
				p.Project = &name
			}
			byProject[s.Project] = p
			names = append(names, s.Project)
		}
		p.Users++
		p.InitialCredits += s.InitialCredits
		p.Purchased += s.Purchased
		p.MonthlyGrant += s.MonthlyGrant
	}
	sort.Slice(names, func(i, j int) bool {
		if (names[i] == "") != (names[j] == "") {
			return names[j] == ""
		}
		return names[i] < names[j]
	})
	for _, n := range names {
		t.Projects = append(t.Projects, *byProject[n])
	}
	return t
}

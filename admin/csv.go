package admin

// csvRoutes are the bulk user routes: CSV in (import) and CSV out (export).
//
// Go's ServeMux picks the most specific pattern, and a literal segment is
// more specific than a wildcard, so "GET /users/export" wins over
// "GET /users/{username}" (a user named "export" cannot be read by that
// path; GET /users?search=export still finds it). "POST /users/import" has
// no wildcard rival: there is no POST /users/{username}.
func (a *api) csvRoutes() []route {
	return []route{
		{method: "POST", path: "/users/import", h: a.importUsers, query: []string{"dry_run"}},
		{method: "GET", path: "/users/export", h: a.exportUsers, query: userFilterParams},
	}
}

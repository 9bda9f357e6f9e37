package console

import (
	"encoding/json"
	"net/url"
	"testing"
)

func TestUserPatchHasOnlyTheChangedFields(t *testing.T) {
	project, expires := "teach", "2031-05-06T13:14:15Z"
	current := userDetail{Username: "ann", Project: &project, Partner: true, MonthlyGrant: "12.5",
		Key: &userKeyDetails{ExpiresAt: &expires}}
	unchanged := url.Values{"username": {"ann"}, "project": {"teach"}, "partner": {"true"},
		"monthly_grant": {"12,50"}, "key_expires_at": {"2031-05-06"}}
	cases := []struct {
		name   string
		change func(v url.Values)
		want   string
	}{
		{"nothing", func(url.Values) {}, `{}`},
		{"disabled username is not sent", func(v url.Values) { v.Del("username") }, `{}`},
		{"rename", func(v url.Values) { v.Set("username", "anna") }, `{"username":"anna"}`},
		{"emptied username goes to the API", func(v url.Values) { v.Set("username", "") }, `{"username":""}`},
		{"no project", func(v url.Values) { v.Set("project", "") }, `{"project":null}`},
		{"other project", func(v url.Values) { v.Set("project", "staff") }, `{"project":"staff"}`},
		{"unchecked partner", func(v url.Values) { v.Del("partner") }, `{"partner":false}`},
		{"new grant", func(v url.Values) { v.Set("monthly_grant", "7") }, `{"monthly_grant":7}`},
		{"emptied grant", func(v url.Values) { v.Set("monthly_grant", " ") }, `{"monthly_grant":0}`},
		{"unreadable grant goes to the API", func(v url.Values) { v.Set("monthly_grant", "viel") }, `{"monthly_grant":"viel"}`},
		{"no expiry", func(v url.Values) { v.Set("key_expires_at", "") }, `{"key_expires_at":null}`},
		{"new expiry", func(v url.Values) { v.Set("key_expires_at", "2032-01-31") }, `{"key_expires_at":"2032-01-31T00:00:00Z"}`},
		{"unreadable expiry goes to the API", func(v url.Values) { v.Set("key_expires_at", "soon") }, `{"key_expires_at":"soon"}`},
	}
	for _, c := range cases {
		typed := url.Values{}
		for k, v := range unchanged {
			typed[k] = append([]string(nil), v...)
		}
		c.change(typed)
		got, err := json.Marshal(userPatch(current, typed))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
	}

	// A user without project, grant or expiry, and a form that keeps it so.
	bare := userDetail{Username: "bob", MonthlyGrant: "0", Key: &userKeyDetails{}}
	got, _ := json.Marshal(userPatch(bare, url.Values{"username": {"bob"}, "monthly_grant": {"0"}}))
	if string(got) != `{}` {
		t.Errorf("bare user: got %s", got)
	}
}

package caddymodule

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseRedisURL(t *testing.T) {
	for _, tc := range []struct {
		url, describe string
		sentinel, tls bool
	}{
		{url: "redis://127.0.0.1:6379/2", describe: "127.0.0.1:6379"},
		{url: "REDIS://u:p@h:1/0?pool_size=8", describe: "h:1"},
		{url: "rediss://h:6380/0", describe: "h:6380", tls: true},
		{url: "unix:///run/redis.sock?db=3", describe: "/run/redis.sock"},
		{url: "redis+sentinel://s1:26379/0?master_name=main&addr=s2:26379&addr=s3:26379",
			describe: `master "main" via sentinels s1:26379,s2:26379,s3:26379`, sentinel: true},
		{url: "rediss+sentinel://su:sp@s1:26379/0?master_name=m&username=u&password=p",
			describe: `master "m" via sentinels s1:26379`, sentinel: true, tls: true},
	} {
		c, err := parseRedisURL(tc.url)
		require.NoError(t, err, tc.url)
		require.Equal(t, tc.describe, c.describe(), tc.url)
		require.Equal(t, tc.sentinel, c.sentinel != nil, tc.url)
		require.Equal(t, tc.tls, c.tlsConfig() != nil, tc.url)
	}

	c, err := parseRedisURL("rediss+sentinel://su:sp@s1:26379/4?master_name=m&username=u&password=p")
	require.NoError(t, err)
	require.Equal(t, "su", c.sentinel.SentinelUsername, "before @: the sentinels' credentials")
	require.Equal(t, "sp", c.sentinel.SentinelPassword)
	require.Equal(t, "u", c.sentinel.Username, "options: the servers' credentials")
	require.Equal(t, "p", c.sentinel.Password)
	require.Equal(t, 4, c.sentinel.DB)
}

func TestParseRedisURLRefusals(t *testing.T) {
	for url, want := range map[string]string{
		"127.0.0.1:6379":                            "must start with redis://",
		"http://h:1":                                "unknown scheme \"http\"",
		"redis+cluster://h:1":                       "unknown scheme \"redis+cluster\"",
		"redis+sentinel://s1:26379/0":               "master_name",
		"redis://h:1/0?no_such_option=1":            "no_such_option",
		"redis://h:1/0?tls_ca_file=/etc/ca.pem":     "need a TLS scheme",
		"rediss://h:1/0?tls_ca_file=/no/such/file":  "tls_ca_file",
		"rediss://h:1/0?tls_cert_file=/etc/c.pem":   "go together",
		"rediss://h:1/0?tls_ca_file=/dev/null":      "no PEM certificate",
		"redis://user:s3cret@h:1/0?bad\x00=1":       "not a valid URL",
		"redis://user:s3cret@h:1/0?no_such_thing=1": "no_such_thing",
	} {
		_, err := parseRedisURL(url)
		require.Error(t, err, url)
		require.Contains(t, err.Error(), want, url)
		require.False(t, strings.Contains(err.Error(), "s3cret"), "an error must not repeat the password: %v", err)
	}
}

package caddymodule

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering/meteringtest"
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
		"redis+sentinel+cluster://h:1":              "unknown scheme \"redis+sentinel+cluster\"",
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

func TestParseRedisURLCluster(t *testing.T) {
	ca := meteringtest.NewTestCA(t)
	cert, key := ca.Issue(t, "tollgate")
	for _, tc := range []struct {
		url, describe      string
		seeds              []string
		user, password     string
		poolSize           int
		tls, clientCert    bool
		tlsServerName      string
		maxRedirects       int
		routeByLatency     bool
		readOnlyToReplicas bool
	}{
		{url: "redis+cluster://10.0.0.1:7000", describe: "cluster via seeds 10.0.0.1:7000", seeds: []string{"10.0.0.1:7000"}},
		{url: "REDIS+CLUSTER://u:p@h1:7000/0?addr=h2:7001&addr=h3:7002&pool_size=8&max_redirects=5",
			describe: "cluster via seeds h1:7000,h2:7001,h3:7002", seeds: []string{"h1:7000", "h2:7001", "h3:7002"},
			user: "u", password: "p", poolSize: 8, maxRedirects: 5},
		{url: "redis+cluster://:p@h1:7000/?route_by_latency=true&read_only=true",
			describe: "cluster via seeds h1:7000", seeds: []string{"h1:7000"}, password: "p", routeByLatency: true, readOnlyToReplicas: true},
		{url: "rediss+cluster://u:p@redis.example:7000?addr=10.0.0.2:7000", describe: "cluster via seeds redis.example:7000,10.0.0.2:7000",
			seeds: []string{"redis.example:7000", "10.0.0.2:7000"}, user: "u", password: "p", tls: true, tlsServerName: "redis.example"},
		{url: "rediss+cluster://redis.example:7000?" + url.Values{"tls_ca_file": {ca.CertFile}, "tls_cert_file": {cert}, "tls_key_file": {key}}.Encode(),
			describe: "cluster via seeds redis.example:7000", seeds: []string{"redis.example:7000"}, tls: true, clientCert: true, tlsServerName: "redis.example"},
	} {
		c, err := parseRedisURL(tc.url)
		require.NoError(t, err, tc.url)
		require.NotNil(t, c.cluster, tc.url)
		require.Nil(t, c.opt, tc.url)
		require.Nil(t, c.sentinel, tc.url)
		require.Equal(t, tc.describe, c.describe(), tc.url)
		require.Equal(t, tc.seeds, c.cluster.Addrs, tc.url)
		require.Equal(t, tc.user, c.cluster.Username, tc.url)
		require.Equal(t, tc.password, c.cluster.Password, tc.url)
		require.Equal(t, tc.poolSize, c.cluster.PoolSize, tc.url)
		require.Equal(t, tc.maxRedirects, c.cluster.MaxRedirects, tc.url)
		require.Equal(t, tc.routeByLatency, c.cluster.RouteByLatency, tc.url)
		require.Equal(t, tc.readOnlyToReplicas, c.cluster.ReadOnly, tc.url)
		require.NotContains(t, c.describe(), "p@", "describe names no credentials")
		if !tc.tls {
			require.Nil(t, c.tlsConfig(), tc.url)
			continue
		}
		cfg := c.tlsConfig()
		require.NotNil(t, cfg, tc.url)
		require.Same(t, c.cluster.TLSConfig, cfg)
		require.Equal(t, tc.tlsServerName, cfg.ServerName, "go-redis checks every node against the first seed's name")
		require.Equal(t, tc.clientCert, cfg.RootCAs != nil, "tls_ca_file: %s", tc.url)
		require.Equal(t, tc.clientCert, len(cfg.Certificates) == 1, "tls_cert_file: %s", tc.url)
	}
}

func TestParseRedisURLClusterRefusals(t *testing.T) {
	for url, want := range map[string]string{
		"redis+cluster://u:s3cret@h:1/2":                        "database 0 only: remove /2",
		"redis+cluster://u:s3cret@h:1?db=2":                     "unexpected option: db",
		"redis+cluster://u:s3cret@h:1?addr=h2":                  "unable to parse addr param: h2",
		"redis+cluster://u:s3cret@h:1?addr=:7000":               "unable to parse addr param",
		"redis+cluster://u:s3cret@h:1?master_name=m":            "unexpected option: master_name",
		"redis+cluster://u:s3cret@h:1?pool_size=many":           "pool_size",
		"redis+cluster://u:s3cret@h:1?skip_verify=true":         "unexpected option: skip_verify",
		"redis+cluster://u:s3cret@h:1?tls_ca_file=/etc/ca.pem":  "rediss+cluster://",
		"rediss+cluster://u:s3cret@h:1?tls_ca_file=/no/such":    "tls_ca_file",
		"rediss+cluster://u:s3cret@h:1?tls_key_file=/etc/k.pem": "go together",
		"rediss+cluster://u:s3cret@h:port?addr=h2:2":            "not a valid URL",
	} {
		_, err := parseRedisURL(url)
		require.Error(t, err, url)
		require.Contains(t, err.Error(), want, url)
		require.NotContains(t, err.Error(), "s3cret", "an error must not repeat the password")
	}
}

// A client built from a parsed redis+cluster:// URL naming one seed finds
// the whole cluster from it, and writes and reads keys served by every
// master.
func TestRedisURLClusterClient(t *testing.T) {
	cl := meteringtest.StartRedisCluster(t, 3, 0)
	seed := cl.Nodes[1].Addr()
	c, err := parseRedisURL("redis+cluster://" + seed + "?pool_size=4&dial_timeout=5s")
	require.NoError(t, err)
	require.Equal(t, "cluster via seeds "+seed, c.describe())

	var onConnect atomic.Int32
	uc := c.client(16, func(ctx context.Context, cn *redis.Conn) error {
		onConnect.Add(1)
		return nil
	})
	defer uc.Close()
	cc, ok := uc.(*redis.ClusterClient)
	require.True(t, ok, "a cluster URL gives a cluster client, not %T", uc)
	require.Equal(t, 4, cc.Options().PoolSize, "the URL's pool_size wins over the default")
	require.Equal(t, clusterStateReload, cc.Options().ClusterStateReloadInterval)

	setGetAcrossSlots(t, uc, cl)
	require.GreaterOrEqual(t, int(onConnect.Load()), 3, "onConnect ran on each master's connections")

	// The other kinds give the plain client.
	single, err := parseRedisURL("redis://" + seed + "/0")
	require.NoError(t, err)
	sc := single.client(2, nil)
	defer sc.Close()
	require.IsType(t, &redis.Client{}, sc)
}

// setGetAcrossSlots writes keys through uc until they span every master
// of cl, and reads them back.
func setGetAcrossSlots(t *testing.T, uc redis.UniversalClient, cl *meteringtest.RedisCluster) {
	ctx := context.Background()
	masters := map[string]bool{}
	for i := range 100 {
		k := fmt.Sprintf("tollgate-cluster-url:%d", i)
		require.NoError(t, uc.Set(ctx, k, i, 0).Err())
		slot, err := uc.ClusterKeySlot(ctx, k).Result()
		require.NoError(t, err)
		masters[cl.MasterOfSlot(int(slot)).Addr()] = true
	}
	require.Len(t, masters, 3, "the keys span every master's slots")
	for i := range 100 {
		v, err := uc.Get(ctx, fmt.Sprintf("tollgate-cluster-url:%d", i)).Int()
		require.NoError(t, err)
		require.Equal(t, i, v)
	}
}

// A rediss+cluster:// URL reaches a cluster that serves TLS only and
// demands client certificates, with Tollgate's TLS file options. The seed
// is named localhost while the nodes announce 127.0.0.1: go-redis checks
// every node's certificate against the seed's name, which these name too.
// Without the CA, or without the client certificate, nothing connects.
func TestRedisURLClusterClientTLS(t *testing.T) {
	ctx := context.Background()
	ca := meteringtest.NewTestCA(t)
	cl := meteringtest.StartRedisClusterTLS(t, 3, 0, ca)
	cert, key := ca.Issue(t, "tollgate")
	_, port, _ := strings.Cut(cl.Nodes[0].Addr(), ":")
	base := "rediss+cluster://localhost:" + port + "?addr=" + cl.Nodes[2].Addr() + "&max_retries=0&"

	c, err := parseRedisURL(base + url.Values{"tls_ca_file": {ca.CertFile}, "tls_cert_file": {cert}, "tls_key_file": {key}}.Encode())
	require.NoError(t, err)
	require.Equal(t, "localhost", c.tlsConfig().ServerName)
	uc := c.client(4, nil)
	defer uc.Close()
	setGetAcrossSlots(t, uc, cl)

	for _, tc := range []struct {
		what, want string
		q          url.Values
	}{
		{"without the CA", "certificate signed by unknown authority", url.Values{"tls_cert_file": {cert}, "tls_key_file": {key}}},
		{"without a client certificate", "certificate required", url.Values{"tls_ca_file": {ca.CertFile}}},
	} {
		c, err := parseRedisURL(base + tc.q.Encode())
		require.NoError(t, err, tc.what)
		uc := c.client(4, nil)
		err = uc.Set(ctx, "tollgate-cluster-url:refused", 1, 0).Err()
		require.ErrorContains(t, err, tc.want, tc.what)
		require.NoError(t, uc.Close())
	}
}

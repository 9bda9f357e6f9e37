package caddymodule_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
	"github.com/tollgate/tollgate/metering/meteringtest"
)

// A gateway reaches a Redis that serves TLS only and demands a client
// certificate, trusting the CA the URL names; without that CA (or without
// a client certificate) it cannot connect and charges nothing.
func TestGatewayRedisOverTLS(t *testing.T) {
	b := meteringtest.New(t, meteringtest.Options{})
	ctx := context.Background()
	ca := meteringtest.NewTestCA(t)
	serverCert, serverKey := ca.Issue(t, "redis")
	clientCert, clientKey := ca.Issue(t, "tollgate")
	pair, err := tls.LoadX509KeyPair(clientCert, clientKey)
	require.NoError(t, err)
	clientTLS := ca.ClientTLS()
	clientTLS.Certificates = []tls.Certificate{pair}
	srv := meteringtest.StartRedisServerTLS(t, clientTLS, serverCert, serverKey, ca.CertFile, "--tls-auth-clients", "yes")

	admin := adminEngine(t, b, func(onConnect func(context.Context, *redis.Conn) error) redis.UniversalClient {
		return redis.NewClient(&redis.Options{Addr: srv.Addr(), TLSConfig: clientTLS, OnConnect: onConnect})
	})
	_, key, err := admin.CreateUser(ctx, "test", metering.UserSpec{Username: "ann", InitialCredits: 5 * metering.Micro})
	require.NoError(t, err)

	up := newUpstream(t)
	start := func(redisURL string) gateway {
		listen := freePort(t)
		startGateway(t, globalOptions(t, b, `"`+redisURL+`"`, "tls-test")+fmt.Sprintf(`http://%s {
	metering {
		cost 1
		credit_leases off
	}
	reverse_proxy %s
}`, listen, up.Listener.Addr().String()))
		return gateway{base: "http://" + listen, client: &http.Client{Timeout: 30 * time.Second}}
	}
	base := "rediss://" + srv.Addr() + "/0"
	q := url.Values{"tls_ca_file": {ca.CertFile}, "tls_cert_file": {clientCert}, "tls_key_file": {clientKey}}

	t.Run("with the CA and a client certificate", func(t *testing.T) {
		g := start(base + "?" + q.Encode())
		for i := 0; i < 5; i++ {
			resp, body := g.do(t, "GET", "/x", key)
			require.Equal(t, http.StatusOK, resp.StatusCode, body)
		}
		resp, _ := g.do(t, "GET", "/x", key)
		require.Equal(t, http.StatusPaymentRequired, resp.StatusCode)
	})
	_, err = admin.AdjustCredits(ctx, "test", "ann", metering.BucketAwarded, 5*metering.Micro, "top up")
	require.NoError(t, err)

	for name, u := range map[string]string{
		"without the CA":                 base + "?tls_cert_file=" + url.QueryEscape(clientCert) + "&tls_key_file=" + url.QueryEscape(clientKey),
		"without a client certificate":   base + "?tls_ca_file=" + url.QueryEscape(ca.CertFile),
		"over plain TCP to the TLS port": "redis://" + srv.Addr() + "/0",
	} {
		t.Run(name, func(t *testing.T) {
			g := start(u)
			resp, body := g.do(t, "GET", "/x", key)
			require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, body)
		})
	}
	require.Equal(t, int64(5), up.hits.Load(), "only the requests charged over TLS reached upstream")
	v, err := admin.GetUser(ctx, "ann")
	require.NoError(t, err)
	require.Equal(t, 5*metering.Micro, v.Live.Effective, "nothing was charged by the gateways that could not connect")
}

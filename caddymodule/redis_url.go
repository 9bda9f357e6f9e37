package caddymodule

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The `redis` option's URL. Three kinds of deployment:
//
//	redis://[user:password@]host:port[/db][?options]     one server
//	rediss://…                                           one server over TLS
//	unix:///path/to/redis.sock[?db=N]                    one server, Unix socket
//	redis+sentinel://[s-user:s-password@]host:port[/db]?master_name=NAME[&addr=host:port…][&username=U&password=P]
//	rediss+sentinel://…                                  Sentinel, TLS to sentinels and servers
//	redis+cluster://[user:password@]host:port[?addr=host:port…][&options]
//	rediss+cluster://…                                   Redis Cluster over TLS
//
// The options after `?` are go-redis's (snake case: dial_timeout=3s,
// pool_size=64…). For a Sentinel URL the user and password before `@` are
// the sentinels' own; the servers' are the username and password options.
// Tollgate adds three options for TLS, taken out before go-redis reads
// the rest: tls_ca_file (the PEM certificates a server's certificate must
// chain to, instead of the system's), tls_cert_file and tls_key_file (a
// client certificate, for servers that ask for one).
//
// A cluster URL names seed nodes (the host before the path, then each
// addr option); the client learns the other nodes and who serves which
// slot from them. Its options are go-redis's cluster options (pool_size is
// per node; there is no db, since a cluster has database 0 only, and no
// skip_verify). Over TLS, go-redis checks every node's certificate against
// the first seed's host name, not the node's own address, so the nodes'
// certificates must all name that host (a shared or wildcard certificate).

// redisConn is a parsed `redis` URL.
type redisConn struct {
	// sentinel is set for a Sentinel URL, cluster for a cluster URL, opt
	// otherwise.
	opt      *redis.Options
	sentinel *redis.FailoverOptions
	cluster  *redis.ClusterOptions
}

// schemes is what a `redis` URL may start with, for error messages.
const schemes = "redis://, rediss://, unix://, redis+sentinel://, rediss+sentinel://, redis+cluster:// or rediss+cluster://"

// parseRedisURL reads a `redis` URL (see above).
func parseRedisURL(raw string) (redisConn, error) {
	scheme, _, ok := strings.Cut(raw, "://")
	if !ok {
		return redisConn{}, errors.New("not a URL: it must start with " + schemes)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return redisConn{}, errors.New("not a valid URL") // the error would repeat the URL, password included
	}
	tlsFiles, query := takeTLSOptions(u.Query())
	u.RawQuery = query.Encode()
	var c redisConn
	switch strings.ToLower(scheme) {
	case "redis", "rediss", "unix":
		c.opt, err = redis.ParseURL(u.String())
	case "redis+sentinel", "rediss+sentinel":
		u.Scheme = strings.TrimSuffix(strings.ToLower(scheme), "+sentinel")
		if c.sentinel, err = redis.ParseFailoverURL(u.String()); err == nil && c.sentinel.MasterName == "" {
			err = errors.New("a Sentinel URL needs the master's name: add ?master_name=<name>")
		}
	case "redis+cluster", "rediss+cluster":
		// go-redis ignores a cluster URL's path: refuse a database number
		// rather than use database 0 when another was asked for.
		if p := strings.TrimPrefix(u.Path, "/"); p != "" && p != "0" {
			return redisConn{}, fmt.Errorf("a Redis Cluster has database 0 only: remove /%s from the URL", p)
		}
		u.Scheme = strings.TrimSuffix(strings.ToLower(scheme), "+cluster")
		u.Path = ""
		c.cluster, err = redis.ParseClusterURL(u.String())
	default:
		return redisConn{}, fmt.Errorf("unknown scheme %q: use %s", scheme, schemes)
	}
	if err != nil {
		return redisConn{}, err
	}
	tlsConfig := c.tlsConfig()
	if tlsFiles.any() {
		if tlsConfig == nil {
			return redisConn{}, errors.New("tls_ca_file, tls_cert_file and tls_key_file need a TLS scheme (rediss://, rediss+sentinel:// or rediss+cluster://)")
		}
		if err := tlsFiles.apply(tlsConfig); err != nil {
			return redisConn{}, err
		}
	}
	return c, nil
}

// tlsConfig is the parsed URL's TLS configuration, nil without TLS.
func (c redisConn) tlsConfig() *tls.Config {
	switch {
	case c.sentinel != nil:
		return c.sentinel.TLSConfig
	case c.cluster != nil:
		return c.cluster.TLSConfig
	}
	return c.opt.TLSConfig
}

// describe names the server(s) for the logs, without credentials.
func (c redisConn) describe() string {
	switch {
	case c.sentinel != nil:
		return fmt.Sprintf("master %q via sentinels %s", c.sentinel.MasterName, strings.Join(c.sentinel.SentinelAddrs, ","))
	case c.cluster != nil:
		return "cluster via seeds " + strings.Join(c.cluster.Addrs, ",")
	}
	return c.opt.Addr
}

// clusterStateReload is how often a cluster client reloads the slot map
// while it has traffic. go-redis reloads it at once on a MOVED or ASK, but
// not when a master stops answering, and by default only every 60s
// otherwise: after a failover its commands for the dead master's slots
// would keep failing for up to a minute. A reload is one CLUSTER SLOTS to
// one node.
const clusterStateReload = time.Second

// client connects (lazily) to any kind of deployment: a
// *redis.ClusterClient for a cluster URL, a *redis.Client otherwise
// (Sentinel's failover client included). Every new connection runs
// onConnect first (on a cluster, to each node; with Sentinel, to the
// sentinels too: the fence lets those pass); poolSize is a default the
// URL's pool_size overrides (on a cluster, per node).
func (c redisConn) client(poolSize int, onConnect func(context.Context, *redis.Conn) error) redis.UniversalClient {
	switch {
	case c.cluster != nil:
		o := *c.cluster
		if o.PoolSize == 0 {
			o.PoolSize = poolSize
		}
		if o.ClusterStateReloadInterval == 0 {
			o.ClusterStateReloadInterval = clusterStateReload
		}
		o.OnConnect = onConnect
		return redis.NewClusterClient(&o)
	case c.sentinel != nil:
		o := *c.sentinel
		if o.PoolSize == 0 {
			o.PoolSize = poolSize
		}
		o.OnConnect = onConnect
		return redis.NewFailoverClient(&o)
	}
	o := *c.opt
	if o.PoolSize == 0 {
		o.PoolSize = poolSize
	}
	o.OnConnect = onConnect
	return redis.NewClient(&o)
}

// redisTLSFiles are Tollgate's own TLS options of a `redis` URL.
type redisTLSFiles struct{ ca, cert, key string }

func takeTLSOptions(q url.Values) (redisTLSFiles, url.Values) {
	f := redisTLSFiles{ca: q.Get("tls_ca_file"), cert: q.Get("tls_cert_file"), key: q.Get("tls_key_file")}
	q.Del("tls_ca_file")
	q.Del("tls_cert_file")
	q.Del("tls_key_file")
	return f, q
}

func (f redisTLSFiles) any() bool { return f.ca != "" || f.cert != "" || f.key != "" }

// apply loads the files into cfg.
func (f redisTLSFiles) apply(cfg *tls.Config) error {
	if f.ca != "" {
		pem, err := os.ReadFile(f.ca)
		if err != nil {
			return fmt.Errorf("tls_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("tls_ca_file %s: no PEM certificate in it", f.ca)
		}
		cfg.RootCAs = pool
	}
	if (f.cert == "") != (f.key == "") {
		return errors.New("tls_cert_file and tls_key_file go together: give both or neither")
	}
	if f.cert != "" {
		pair, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return fmt.Errorf("tls_cert_file/tls_key_file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return nil
}

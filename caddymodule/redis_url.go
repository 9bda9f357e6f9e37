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

	"github.com/redis/go-redis/v9"
)

// The `redis` option's URL. Two kinds of deployment, one client type
// (*redis.Client, which the Redis fence needs: metering/fence.go):
//
//	redis://[user:password@]host:port[/db][?options]     one server
//	rediss://…                                           one server over TLS
//	unix:///path/to/redis.sock[?db=N]                    one server, Unix socket
//	redis+sentinel://[s-user:s-password@]host:port[/db]?master_name=NAME[&addr=host:port…][&username=U&password=P]
//	rediss+sentinel://…                                  Sentinel, TLS to sentinels and servers
//
// The options after `?` are go-redis's (snake case: dial_timeout=3s,
// pool_size=64…). For a Sentinel URL the user and password before `@` are
// the sentinels' own; the servers' are the username and password options.
// Tollgate adds three options for TLS, taken out before go-redis reads
// the rest: tls_ca_file (the PEM certificates a server's certificate must
// chain to, instead of the system's), tls_cert_file and tls_key_file (a
// client certificate, for servers that ask for one).
//
// Redis Cluster is not accepted yet: every Tollgate key shares one hash
// tag, so a cluster would hold all of Tollgate on one of its masters.

// redisConn is a parsed `redis` URL.
type redisConn struct {
	// sentinel is set for a Sentinel URL, opt otherwise.
	opt      *redis.Options
	sentinel *redis.FailoverOptions
}

// parseRedisURL reads a `redis` URL (see above).
func parseRedisURL(raw string) (redisConn, error) {
	scheme, _, ok := strings.Cut(raw, "://")
	if !ok {
		return redisConn{}, errors.New("not a URL: it must start with redis://, rediss://, unix://, redis+sentinel:// or rediss+sentinel://")
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
	default:
		return redisConn{}, fmt.Errorf("unknown scheme %q: use redis://, rediss://, unix://, redis+sentinel:// or rediss+sentinel://", scheme)
	}
	if err != nil {
		return redisConn{}, err
	}
	tlsConfig := c.tlsConfig()
	if tlsFiles.any() {
		if tlsConfig == nil {
			return redisConn{}, errors.New("tls_ca_file, tls_cert_file and tls_key_file need a TLS scheme (rediss:// or rediss+sentinel://)")
		}
		if err := tlsFiles.apply(tlsConfig); err != nil {
			return redisConn{}, err
		}
	}
	return c, nil
}

// tlsConfig is the parsed URL's TLS configuration, nil without TLS.
func (c redisConn) tlsConfig() *tls.Config {
	if c.sentinel != nil {
		return c.sentinel.TLSConfig
	}
	return c.opt.TLSConfig
}

// describe names the server(s) for the logs, without credentials.
func (c redisConn) describe() string {
	if c.sentinel != nil {
		return fmt.Sprintf("master %q via sentinels %s", c.sentinel.MasterName, strings.Join(c.sentinel.SentinelAddrs, ","))
	}
	return c.opt.Addr
}

// client connects (lazily): every new connection runs onConnect first.
func (c redisConn) client(poolSize int, onConnect func(context.Context, *redis.Conn) error) *redis.Client {
	if c.sentinel != nil {
		o := *c.sentinel
		if o.PoolSize == 0 {
			o.PoolSize = poolSize
		}
		o.OnConnect = onConnect // on the sentinels' connections too: the fence lets those pass
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

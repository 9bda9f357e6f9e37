package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// endpoint is what the scripts need to know about a server URL: where it
// is (to start a private server there when nothing answers), who to be,
// and how to show it without its password.
type endpoint struct {
	Host     string // host name or IP address; a socket path for Unix sockets
	Port     int    // 0 for Unix sockets
	Database string // Redis: the database number; PostgreSQL: the database name
	User     string
	Password string
	TLS      bool
	// Local: Host is a TCP address on this machine, so a private server
	// can be started for it.
	Local bool
	Shown string // the URL without its password, for messages
}

// parseRedisURL reads a Redis URL exactly as the gateway does
// (redis.ParseURL: redis://, rediss://, unix://).
func parseRedisURL(raw string) (endpoint, error) {
	opt, err := redis.ParseURL(raw)
	if err != nil {
		return endpoint{}, fmt.Errorf("not a usable Redis URL (%s): %w", shownRaw(raw), urlError(err))
	}
	e := endpoint{Database: strconv.Itoa(opt.DB), User: opt.Username, Password: opt.Password, TLS: opt.TLSConfig != nil}
	scheme := "redis"
	if e.TLS {
		scheme = "rediss"
	}
	if opt.Network == "unix" {
		e.Host = opt.Addr
		e.Shown = "unix://" + opt.Addr + "?db=" + e.Database
	} else {
		host, port, err := net.SplitHostPort(opt.Addr)
		if err != nil {
			return endpoint{}, fmt.Errorf("Redis URL %s: address %s: %w", shownRaw(raw), printable(opt.Addr), err)
		}
		if e.Port, err = parsePort(port); err != nil {
			return endpoint{}, fmt.Errorf("Redis URL %s: %w", shownRaw(raw), err)
		}
		e.Host = host
		e.Local = isLocal(host)
		e.Shown = scheme + "://" + userPart(e.User) + net.JoinHostPort(host, port) + "/" + e.Database
	}
	e.Shown = printable(e.Shown)
	return e, nil
}

// parsePostgresURL reads a PostgreSQL connection string exactly as the
// gateway does (pgx.ParseConfig: URL or key=value form, PG* environment
// variables as defaults). With several hosts, the first one is described;
// the others are named in Shown.
func parsePostgresURL(raw string) (endpoint, error) {
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		// pgx's message already hides the password.
		return endpoint{}, fmt.Errorf("not a usable PostgreSQL URL: %s", printable(err.Error()))
	}
	e := endpoint{Host: cfg.Host, Port: int(cfg.Port), Database: cfg.Database, User: cfg.User,
		Password: cfg.Password, TLS: cfg.TLSConfig != nil}
	if e.Database == "" {
		// The server's own default: the database named like the user.
		e.Database = e.User
	}
	if strings.HasPrefix(e.Host, "/") {
		e.Port = 0
		e.Shown = fmt.Sprintf("postgres://%s/%s?host=%s", userPart(e.User), url.PathEscape(e.Database), url.QueryEscape(e.Host))
	} else {
		e.Local = isLocal(e.Host)
		e.Shown = "postgres://" + userPart(e.User) + net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) + "/" + url.PathEscape(e.Database)
	}
	if n := len(cfg.Fallbacks); n > 0 {
		others := make([]string, 0, n)
		for _, f := range cfg.Fallbacks {
			if f.Host == cfg.Host && f.Port == cfg.Port {
				continue // the same host again, e.g. with another sslmode
			}
			others = append(others, net.JoinHostPort(f.Host, strconv.Itoa(int(f.Port))))
		}
		if len(others) > 0 {
			e.Shown += " (then " + strings.Join(others, ", ") + ")"
		}
	}
	e.Shown = printable(e.Shown)
	return e, nil
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("port %s is not a number from 1 to 65535", printable(s))
	}
	return p, nil
}

// isLocal: a TCP address on this machine. Only the loopback addresses
// count: a private server never listens anywhere else.
func isLocal(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

func userPart(user string) string {
	if user == "" {
		return ""
	}
	return url.User(user).String() + "@"
}

// urlError drops the URL that net/url puts in its errors: it may hold a
// password.
func urlError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// shownRaw is a URL as given, its password hidden, for messages about a
// URL that did not parse; "the URL" when it does not even split.
func shownRaw(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the URL"
	}
	return printable(u.Redacted())
}

// printable escapes, as Go would in a string literal, what a terminal
// would not show as itself: control characters, invalid UTF-8.
func printable(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size == 1: // not UTF-8
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case unicode.IsGraphic(r):
			b.WriteRune(r)
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		s = s[size:]
	}
	return b.String()
}

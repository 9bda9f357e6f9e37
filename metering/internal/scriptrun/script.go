package scriptrun

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Script is a Lua script: go-redis's Script (EVALSHA, with its hash) and
// the source, which the runner sends with EVAL when Redis has lost its
// script cache.
type Script struct {
	*redis.Script
	src string
	// hashArg and srcArg are the hash and the source boxed once: a string
	// put in an interface allocates, and every call sends one of them.
	hashArg, srcArg any
	// name and id identify a script made by NewNamedScript (id indexes
	// NamedScripts), so an Observer can keep a per-script figure in an
	// array instead of a map; id is -1 for an unnamed script.
	name string
	id   int
}

// NewScript makes a script of its source, without a name.
func NewScript(src string) *Script {
	s := &Script{Script: redis.NewScript(src), src: src, id: -1}
	s.hashArg, s.srcArg = s.Hash(), src
	return s
}

// named lists the scripts NewNamedScript made, in order (their ids).
var named struct {
	mu   sync.Mutex
	list []*Script
}

// NewNamedScript makes a script of its source under a name that no other
// named script has (it panics otherwise: names are fixed in the program,
// and a metric label per script must be unique). Make named scripts at
// package initialisation: their number bounds a per-script metric.
func NewNamedScript(name, src string) *Script {
	s := NewScript(src)
	named.mu.Lock()
	defer named.mu.Unlock()
	for _, o := range named.list {
		if o.name == name {
			panic(fmt.Sprintf("scriptrun: two scripts named %q", name))
		}
	}
	s.name, s.id = name, len(named.list)
	named.list = append(named.list, s)
	return s
}

// NamedScripts returns every named script, each at the index of its ID.
func NamedScripts() []*Script {
	named.mu.Lock()
	defer named.mu.Unlock()
	return append([]*Script(nil), named.list...)
}

// Name is the script's name ("" unnamed).
func (s *Script) Name() string { return s.name }

// ID is the script's index in NamedScripts, or -1 when it has no name.
func (s *Script) ID() int { return s.id }

// Source is the script's Lua source.
func (s *Script) Source() string { return s.src }

// Fence is what the runner asks before it sends: while Blocked, Redis must
// not be written to until it is verified (metering.RedisFence).
type Fence interface {
	Blocked() bool
}

// The errors callers see, defined here so the runner can produce them;
// the metering package re-exports them under the same names.
var (
	// ErrUnavailable: Redis could not be used (callers fail closed, 503).
	ErrUnavailable = errors.New("metering unavailable")
	// ErrOutcomeUnknown wraps a Redis error after which a script may or
	// may not have run (its answer was lost to a timeout or a broken
	// connection). Always together with ErrUnavailable.
	ErrOutcomeUnknown = errors.New("outcome unknown")
	// ErrFenced is what a connection to an unverified Redis fails with;
	// such a connection never carries a command, so nothing was sent.
	ErrFenced = errors.New("Redis restarted and is not yet verified against the ledger")
)

// Unavailable wraps Redis errors so callers can fail closed with a 503.
func Unavailable(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) || errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

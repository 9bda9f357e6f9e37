package console

import (
	"sync"
	"time"
)

// Failed sign-ins are slowed down per client address: the first
// freeFailures cost nothing (typos), then each failure locks the address
// out for lockStart, doubling up to lockMax. A success clears the count.
// With 20-byte random tokens this is about noise and log volume, not
// feasibility: guessing one is hopeless either way.
const (
	freeFailures   = 5
	lockStart      = 30 * time.Second
	lockMax        = 15 * time.Minute
	maxTrackedAddr = 100000
)

type signInThrottle struct {
	mu   sync.Mutex
	now  func() time.Time
	addr map[string]*failures
}

type failures struct {
	count int
	until time.Time // no attempt is checked before this
	last  time.Time
}

func newSignInThrottle(now func() time.Time) *signInThrottle {
	return &signInThrottle{now: now, addr: map[string]*failures{}}
}

// wait is how long the address must wait before its next attempt is
// checked; 0 when it may try now.
func (t *signInThrottle) wait(addr string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.addr[addr]
	if f == nil {
		return 0
	}
	if d := f.until.Sub(t.now()); d > 0 {
		return d
	}
	return 0
}

// failed records a failed attempt from addr.
func (t *signInThrottle) failed(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if len(t.addr) >= maxTrackedAddr {
		t.forgetLocked(now)
	}
	f := t.addr[addr]
	if f == nil {
		f = &failures{}
		t.addr[addr] = f
	}
	f.count++
	f.last = now
	if f.count > freeFailures {
		lock := lockStart
		for i := freeFailures + 1; i < f.count && lock < lockMax; i++ {
			lock *= 2
		}
		f.until = now.Add(min(lock, lockMax))
	}
}

// succeeded clears the address's failures.
func (t *signInThrottle) succeeded(addr string) {
	t.mu.Lock()
	delete(t.addr, addr)
	t.mu.Unlock()
}

// forgetLocked drops addresses quiet for longer than the longest lock,
// and all of them if the table is still full (an attack from very many
// addresses: the table must not grow without bound).
func (t *signInThrottle) forgetLocked(now time.Time) {
	for a, f := range t.addr {
		if now.Sub(f.last) > lockMax {
			delete(t.addr, a)
		}
	}
	if len(t.addr) >= maxTrackedAddr {
		clear(t.addr)
	}
}

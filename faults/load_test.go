//go:build faults

package faults

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The load: concurrent clients, each request with a unique number n in its
// path so that its ledger events are found by their request label
// (method + path), never by counting.

type reqKind int

const (
	kindFixed  reqKind = iota // GET /f/<n>/<mode>/x, 1 credit
	kindChat                  // POST /c/<n>/<mode>/v1/chat/completions
	kindStream                // the same, streamed
	kindLeased                // GET /l/<n>/<mode>/x, 1 credit from a credit lease
)

func (k reqKind) String() string { return [...]string{"fixed", "chat", "stream", "leased"}[k] }

// fixedCost reports a request of a fixed-cost route (1 credit).
func (k reqKind) fixedCost() bool { return k == kindFixed || k == kindLeased }

// outcome is what the client learnt.
type outcome int

const (
	answered outcome = iota // a whole answer with a status
	notSent                 // no connection to a gateway: it never saw the request
	lost                    // connection error, timeout or a cut answer: the gateway may have charged
)

// record is one request and what came of it.
type record struct {
	n          int64
	user       *cycleUser
	gw         int    // index in world.gws
	gwName     string // for messages
	kind       reqKind
	mode       string
	start, end time.Time
	outcome    outcome
	status     int
	code       string // error.code of a JSON error answer
	err        string
}

func (r *record) label() string {
	switch r.kind {
	case kindFixed:
		return fmt.Sprintf("GET /f/%d/%s/x", r.n, r.mode)
	case kindLeased:
		return fmt.Sprintf("GET /l/%d/%s/x", r.n, r.mode)
	}
	return fmt.Sprintf("POST /c/%d/%s/v1/chat/completions", r.n, r.mode)
}

func (r *record) String() string {
	what := fmt.Sprintf("%d %s", r.status, r.code)
	switch r.outcome {
	case notSent:
		what = "not sent: " + r.err
	case lost:
		what = fmt.Sprintf("lost (status %d): %s", r.status, r.err)
	}
	return fmt.Sprintf("%s (%s, user %s, via %s) → %s", r.label(), r.kind, r.user.name, r.gwName, strings.TrimSpace(what))
}

// mix is what the clients send: weights of fixed, chat, stream and leased
// requests (in reqKind's order), and the share of requests that ask the upstream for one of
// modes (chosen evenly) instead of "ok".
type mix struct {
	weights [4]int
	modes   []string
	share   float64
}

var normalMix = &mix{weights: [4]int{3, 3, 2, 3}}

type load struct {
	w       *world
	c       *cycle
	mix     atomic.Pointer[mix]
	stop    chan struct{}
	wg      sync.WaitGroup
	ok      atomic.Int64 // 2xx answers so far
	mu      sync.Mutex
	records []*record
	// Fixed-cost GETs go without keep-alive: Go's client silently resends
	// an idempotent request whose reused connection broke, which would
	// send one request number twice.
	fixed, chat *http.Client
}

// startLoad runs workers until finish; each pauses about pace between its
// requests. Their random choices come from the cycle's seed.
func (w *world) startLoad(c *cycle, workers int, pace time.Duration, m *mix) *load {
	l := &load{w: w, c: c, stop: make(chan struct{}),
		fixed: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
		chat:  &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}}
	l.mix.Store(m)
	for i := range workers {
		rng := rand.New(rand.NewSource(c.seed + int64(i)*7919))
		l.wg.Add(1)
		go l.worker(rng, pace)
	}
	return l
}

func (l *load) setMix(m *mix) { l.mix.Store(m) }

// finish stops the workers and waits for their last requests (each is
// bounded by its own timeout).
func (l *load) finish() []*record {
	close(l.stop)
	l.wg.Wait()
	l.fixed.CloseIdleConnections()
	l.chat.CloseIdleConnections()
	return l.records
}

// count counts the requests answered so far that match.
func (l *load) count(match func(*record) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.records {
		if match(r) {
			n++
		}
	}
	return n
}

// waitOK waits for n more 2xx answers than there are now.
func (l *load) waitOK(n int64, deadline time.Duration, what string) error {
	target := l.ok.Load() + n
	return waitFor(what, deadline, func() (bool, string) {
		got := l.ok.Load()
		return got >= target, fmt.Sprintf("%d of %d 2xx answers", got-(target-n), n)
	})
}

func (l *load) worker(rng *rand.Rand, pace time.Duration) {
	defer l.wg.Done()
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		m := l.mix.Load()
		r := &record{user: l.c.users[rng.Intn(len(l.c.users))], gw: rng.Intn(len(l.w.gws)), mode: "ok"}
		r.gwName = l.w.gws[r.gw].name
		total := 0
		for _, wt := range m.weights {
			total += wt
		}
		pick := rng.Intn(total)
		for k, wt := range m.weights {
			if pick < wt {
				r.kind = reqKind(k)
				break
			}
			pick -= wt
		}
		if len(m.modes) > 0 && rng.Float64() < m.share {
			r.mode = m.modes[rng.Intn(len(m.modes))]
		}
		l.do(r, rng)
		l.mu.Lock()
		l.records = append(l.records, r)
		l.mu.Unlock()
		if r.outcome == answered && r.status/100 == 2 {
			l.ok.Add(1)
		}
		select {
		case <-l.stop:
			return
		case <-time.After(time.Duration(rng.Int63n(int64(2 * pace)))):
		}
	}
}

// Client timeouts: a hanging upstream is given up on sooner than anything
// else; both bound every request.
const (
	requestTimeout = 30 * time.Second
	hangTimeout    = 4 * time.Second
)

func (l *load) do(r *record, rng *rand.Rand) {
	r.n = l.w.nextN.Add(1)
	timeout := requestTimeout
	if r.mode == "hang" {
		timeout = hangTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	base := l.w.gws[r.gw].base()
	var req *http.Request
	client := l.chat
	if r.kind.fixedCost() {
		req, _ = http.NewRequestWithContext(ctx, http.MethodGet, base+strings.TrimPrefix(r.label(), "GET "), nil)
		client = l.fixed
	} else {
		body, _ := json.Marshal(map[string]any{
			"model":      chatModel,
			"max_tokens": 8 + rng.Intn(40),
			"stream":     r.kind == kindStream,
			"messages":   []map[string]string{{"role": "user", "content": strings.Repeat("hello ", 2+rng.Intn(40))}},
		})
		req, _ = http.NewRequestWithContext(ctx, http.MethodPost,
			fmt.Sprintf("%s/c/%d/%s/v1/chat/completions", base, r.n, r.mode), bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+r.user.key)
	r.start = time.Now()
	defer func() { r.end = time.Now() }()
	resp, err := client.Do(req)
	if err != nil {
		r.outcome, r.err = lost, err.Error()
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			r.outcome = notSent
		}
		return
	}
	defer resp.Body.Close()
	r.status = resp.StatusCode
	if r.kind == kindStream && resp.StatusCode == http.StatusOK {
		if err := readStream(resp.Body); err != nil {
			r.outcome, r.err = lost, err.Error()
		}
		return
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		r.outcome, r.err = lost, "reading the answer: "+err.Error()
		return
	}
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil {
		r.code = e.Error.Code
	}
}

// readStream reads an SSE answer to its end; a stream that ends without
// "data: [DONE]" was cut.
func readStream(body io.Reader) error {
	sc := bufio.NewScanner(body)
	done := false
	for sc.Scan() {
		if sc.Text() == "data: [DONE]" {
			done = true
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("stream cut: %w", err)
	}
	if !done {
		return errors.New("stream ended without [DONE]")
	}
	return nil
}

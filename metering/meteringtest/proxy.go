package meteringtest

import (
	"bytes"
	"context"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Proxy is a TCP proxy in front of the test Redis that can hold what
// passes through it, the way a stalled Redis or a network partition
// does: a command that was sent but not yet executed (held requests), or
// executed with its answer lost (held replies). A hold applies to the
// connections open at the call and to the connection that carries the
// first command after it (see freeze); every later connection passes freely,
// so the client's new connections work while the held ones wait.
type Proxy struct {
	Addr string

	t      testing.TB
	target string
	ln     net.Listener
	mu     sync.Mutex
	conns  []*proxyConn
	down   bool
	// armed is the last hold (FreezeRequests or DropReplies) until the
	// first command after it has been seen; see freeze.
	armed *hold
	wg    sync.WaitGroup
	// flush, when set, empties Redis's script cache before passing on any
	// request with an EVALSHA (see FlushScriptsBeforeEvalsha).
	flush *redis.Client
}

type proxyConn struct {
	p              *Proxy
	client, server net.Conn
	mu             sync.Mutex
	holdRequests   bool // frozen: commands wait for Thaw (and stay frozen after it)
	holdReplies    bool
	heldRequests   []byte
	closed         chan struct{} // Redis has closed the connection
}

// NewProxy listens on a free loopback port and forwards to target
// (host:port). Everything is closed when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), t: t, target: target, ln: ln}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		pc := &proxyConn{p: p, client: c, server: s, closed: make(chan struct{})}
		p.mu.Lock()
		p.conns = append(p.conns, pc)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); pc.requests() }()
		go func() { defer p.wg.Done(); pc.replies() }()
	}
}

// requests forwards client → Redis, buffering while held. Held bytes are
// delivered on Thaw even if the client has gone meanwhile: they were
// "in Redis's socket" already.
func (c *proxyConn) requests() {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.client.Read(buf)
		if n > 0 {
			c.p.claim(c, buf[:n])
			c.mu.Lock()
			if c.holdRequests {
				c.heldRequests = append(c.heldRequests, buf[:n]...)
				c.mu.Unlock()
			} else {
				c.mu.Unlock()
				c.p.maybeFlushScripts(buf[:n])
				if _, werr := c.server.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			// The client is gone. A frozen connection's held commands still
			// reach Redis, at Thaw (which also ends the connection).
			c.mu.Lock()
			frozen := c.holdRequests
			c.mu.Unlock()
			if !frozen {
				c.server.Close()
			}
			return
		}
	}
}

// replies forwards Redis → client; while held, replies are read and
// thrown away (an answer lost on the way back).
func (c *proxyConn) replies() {
	defer close(c.closed)
	buf := make([]byte, 32<<10)
	for {
		n, err := c.server.Read(buf)
		if n > 0 {
			c.mu.Lock()
			drop := c.holdReplies
			c.mu.Unlock()
			if !drop {
				if _, werr := c.client.Write(buf[:n]); werr != nil {
					_, _ = io.Copy(io.Discard, c.server)
					return
				}
			}
		}
		if err != nil {
			c.client.Close()
			c.server.Close()
			return
		}
	}
}

// FreezeRequests holds every command sent on the connections open now,
// and on the connection that carries the first command after the call
// (see freeze): they reach Redis only at Thaw, in the order Thaw is given.
func (p *Proxy) FreezeRequests() *Frozen {
	h := &hold{requests: true}
	p.freeze(h)
	return &Frozen{p: p, h: h}
}

// DropReplies lets commands on the connections open now, and on the
// connection that carries the first command after the call (see freeze),
// run, but loses their answers, as a timeout or a broken connection does.
func (p *Proxy) DropReplies() { p.freeze(&hold{}) }

// ProxyConn is a frozen connection, released by Thaw.
type ProxyConn = proxyConn

// Frozen is what one FreezeRequests holds.
type Frozen struct {
	p *Proxy
	h *hold
}

// Conns returns the frozen connections: those open at the call and the
// one that carried the first command after it, if that was another.
// Ask once the frozen command has been sent.
func (f *Frozen) Conns() []*ProxyConn {
	f.p.mu.Lock()
	defer f.p.mu.Unlock()
	return append([]*ProxyConn(nil), f.h.conns...)
}

// hold is one FreezeRequests (requests) or DropReplies and the
// connections it holds (guarded by Proxy.mu).
type hold struct {
	requests bool
	conns    []*proxyConn
}

func (c *proxyConn) apply(h *hold) {
	c.mu.Lock()
	if h.requests {
		c.holdRequests = true
	} else {
		c.holdReplies = true
	}
	c.mu.Unlock()
	h.conns = append(h.conns, c)
}

// freeze applies h to the connections open now and arms it.
//
// Why arm: the client may have no usable connection at the call (go-redis
// closes one whose read timed out, which on a loaded machine a set-up
// command's can, and the proxy may not have seen the close yet), so the
// command the test means to hold goes out on a connection dialled after
// the call. The armed hold is therefore also applied to the connection
// that carries the first command after the call (its set-up commands
// aside), whichever it is, and then disarmed: the repairs the client makes
// after giving up on that command go on later connections, which pass.
// Which connection that is no longer depends on timing.
func (p *Proxy) freeze(h *hold) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		select {
		case <-c.closed:
			continue // gone already
		default:
		}
		c.apply(h)
	}
	p.armed = h
}

// claim gives the armed hold, if any, to c when request is a command
// other than a connection's set-up (a new connection's handshake is not
// the command the hold is meant for: holding it would fail the dial
// instead).
func (p *Proxy) claim(c *proxyConn, request []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.armed
	if h == nil || connSetup(request) {
		return
	}
	p.armed = nil
	if !slices.Contains(h.conns, c) {
		c.apply(h)
	}
}

// setupCommands are what go-redis sends on a new connection before the
// caller's command (each batch written and answered before the next).
var setupCommands = []string{"hello", "auth", "select", "client", "readonly"}

// connSetup reports whether request starts with one of setupCommands
// (a RESP array: *N, then $len and the command's name).
func connSetup(request []byte) bool {
	_, rest, ok := bytes.Cut(request, []byte("\r\n"))
	if !ok || len(request) == 0 || request[0] != '*' {
		return false
	}
	_, rest, ok = bytes.Cut(rest, []byte("\r\n"))
	if !ok {
		return false
	}
	name, _, ok := bytes.Cut(rest, []byte("\r\n"))
	if !ok {
		return false
	}
	for _, s := range setupCommands {
		if bytes.EqualFold(name, []byte(s)) {
			return true
		}
	}
	return false
}

// Thaw delivers a frozen connection's held commands to Redis now and
// ends the connection: the client side is closed (the client gave up on
// it long ago), and Redis, after running what it got, sees the end and
// closes its side (WaitClosed).
func (c *ProxyConn) Thaw() {
	c.mu.Lock()
	held := c.heldRequests
	c.heldRequests = nil
	if len(held) > 0 {
		_, _ = c.server.Write(held)
	}
	if tc, ok := c.server.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	c.client.Close()
	c.mu.Unlock()
}

// WaitClosed waits until Redis has closed the connection, which it does
// only after running every command the connection delivered.
func (c *ProxyConn) WaitClosed(t testing.TB, timeout time.Duration) {
	t.Helper()
	select {
	case <-c.closed:
	case <-time.After(timeout):
		t.Fatalf("Redis did not close a thawed proxy connection within %s", timeout)
	}
}

// Held reports how many bytes of commands wait on this connection.
func (c *ProxyConn) Held() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.heldRequests)
}

// FlushScriptsBeforeEvalsha makes every EVALSHA that passes meet an empty
// script cache (SCRIPT FLUSH on a side connection, answered before the
// EVALSHA is passed on), as after a Redis restart or a flush by an
// operator, every time. It is on until the test ends.
func (p *Proxy) FlushScriptsBeforeEvalsha() {
	opt, err := redis.ParseURL(RedisURL())
	if err != nil {
		p.t.Fatal(err)
	}
	c := redis.NewClient(opt)
	p.mu.Lock()
	p.flush = c
	p.mu.Unlock()
	p.t.Cleanup(func() { c.Close() })
}

func (p *Proxy) maybeFlushScripts(request []byte) {
	p.mu.Lock()
	c := p.flush
	p.mu.Unlock()
	if c != nil && bytes.Contains(bytes.ToLower(request), []byte("\r\nevalsha\r\n")) {
		if err := c.ScriptFlush(context.Background()).Err(); err != nil {
			p.t.Errorf("proxy: SCRIPT FLUSH: %v", err)
		}
	}
}

// Down makes Redis unreachable: every connection is cut (held commands are
// lost with it) and new ones are closed at once, until Up.
func (p *Proxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	p.armed = nil
	for _, c := range p.conns {
		c.mu.Lock()
		c.heldRequests, c.holdRequests = nil, false
		c.mu.Unlock()
		c.client.Close()
		c.server.Close()
	}
	p.conns = nil
}

// Up lets connections through again.
func (p *Proxy) Up() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

func (p *Proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.mu.Lock()
		c.holdRequests = false
		c.mu.Unlock()
		c.client.Close()
		c.server.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

package metering

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// The recall channel. An admin change that must reach every gateway before
// its answer (deactivation, key rotation, deletion, balance changes, a
// project's changes) recalls the leases of the users it touches: recall.lua
// appends the recall to a stream and names the gateways alive by their
// heartbeat; each gateway reads the stream, ends the leases named (first
// stopping admissions from them) and acknowledges; the admin call returns
// when every gateway named has acknowledged or stopped being alive.
//
// "Alive" is one heartbeat (gateway_heartbeat.lua), renewed only while the
// gateway has handled every recall in the stream, and trusted by the
// gateway itself for less time than Redis gives it, on its own monotonic
// clock: a gateway that cannot read recalls (cut off, stuck) stops
// admitting from memory before the admin stops waiting for it.

// heartbeatLoop renews this gateway's heartbeat every fifth of its length.
func (t *leaseTable) heartbeatLoop(ctx context.Context) {
	every := t.cfg.Heartbeat / 5
	// The gateway trusts its heartbeat until a tenth before Redis's
	// deadline, counted from before the call was sent.
	trust := t.cfg.Heartbeat - t.cfg.Heartbeat/10
	for {
		if last := t.lastRecall.Load(); last != nil {
			sent := time.Since(t.base)
			res, err := heartbeatScript.Run(ctx, t.e.rdb, []string{t.e.keys.Gateways(), t.e.keys.Recalls()},
				t.gatewayID, t.cfg.Heartbeat.Milliseconds(), *last).Slice()
			switch {
			case err != nil:
				if ctx.Err() == nil {
					t.e.log.Warn("gateway heartbeat failed; admitting from credit leases stops when it runs out", zap.Error(err))
				}
			case len(res) > 0 && res[0] == int64(0):
				t.aliveUntil.Store(int64(sent + trust))
			default:
				// Recalls to handle first: the reader is on them.
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// recallLoop reads the recall stream from where this gateway joined and
// applies each recall, then acknowledges it.
func (t *leaseTable) recallLoop(ctx context.Context) {
	rdb, stream := t.e.rdb, t.e.keys.Recalls()
	for t.lastRecall.Load() == nil {
		// Recalls older than this gateway concern leases it never had.
		last := "0-0"
		msgs, err := rdb.XRevRangeN(ctx, stream, "+", "-", 1).Result()
		if err == nil {
			if len(msgs) > 0 {
				last = msgs[0].ID
			}
			t.lastRecall.Store(&last)
			break
		}
		if !sleepCtx(ctx, 200*time.Millisecond) {
			return
		}
	}
	for ctx.Err() == nil {
		streams, err := rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{stream, *t.lastRecall.Load()},
			Count: 100, Block: time.Second}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				t.e.log.Warn("reading lease recalls failed", zap.Error(err))
				sleepCtx(ctx, 200*time.Millisecond)
			}
			continue
		}
		for _, s := range streams {
			for _, m := range s.Messages {
				t.applyRecall(ctx, m.Values)
				id, _ := m.Values["r"].(string)
				pipe := rdb.Pipeline()
				pipe.LPush(ctx, t.e.keys.RecallAcks(id), t.gatewayID)
				pipe.PExpire(ctx, t.e.keys.RecallAcks(id), time.Minute)
				if _, err := pipe.Exec(ctx); err != nil {
					// Not handled until acknowledged: the heartbeat is not
					// renewed meanwhile, and the recall is read again.
					if ctx.Err() == nil {
						t.e.log.Warn("acknowledging a lease recall failed; retrying", zap.Error(err))
						sleepCtx(ctx, 200*time.Millisecond)
					}
					break
				}
				seen := m.ID
				t.lastRecall.Store(&seen)
			}
		}
	}
}

// applyRecall ends this gateway's leases of the users or the project a
// recall names. Each slot concerned is locked first, so a take in progress
// finishes and is ended too; admissions stop before anything is sent.
func (t *leaseTable) applyRecall(ctx context.Context, v map[string]any) {
	users := map[int64]bool{}
	if s, _ := v["u"].(string); s != "" {
		for _, f := range strings.Split(s, ",") {
			if id, err := strconv.ParseInt(f, 10, 64); err == nil {
				users[id] = true
			}
		}
	}
	var project int64
	if s, _ := v["p"].(string); s != "" {
		project, _ = strconv.ParseInt(s, 10, 64)
	}
	t.slotMu.RLock()
	var slots []*leaseSlot
	for uid, s := range t.slots {
		if users[uid] || project != 0 {
			slots = append(slots, s)
		}
	}
	t.slotMu.RUnlock()
	var ended []*creditLease
	for _, s := range slots {
		s.mu.Lock()
		if l := s.l; l != nil && (users[l.userID] || project != 0 && l.projectID == project) {
			s.l = nil
			l.mu.Lock()
			l.ended = true
			l.mu.Unlock()
			ended = append(ended, l)
		}
		s.mu.Unlock()
	}
	parallel(ended, func(l *creditLease) { t.finish(ctx, l, "") })
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// recall recalls every gateway's credit leases of the users (and of every
// user of project, when not 0) and returns when each gateway alive has
// acknowledged or stopped being alive. With no gateway holding leases it
// costs one script call.
func (e *Engine) recall(ctx context.Context, project int64, users ...int64) error {
	ids := make([]string, 0, len(users))
	for _, u := range users {
		if u != 0 {
			ids = append(ids, strconv.FormatInt(u, 10))
		}
	}
	proj := ""
	if project != 0 {
		proj = strconv.FormatInt(project, 10)
	}
	if len(ids) == 0 && proj == "" {
		return nil
	}
	rid := e.ids.Next()
	var res []any
	err := e.afterVerifying(ctx, func() (err error) {
		res, err = recallScript.Run(ctx, e.rdb, []string{e.keys.Gateways(), e.keys.Recalls()},
			rid, strings.Join(ids, ","), proj).Slice()
		return err
	})
	if err != nil {
		return unavailable(err)
	}
	waiting := map[string]bool{}
	for _, g := range res[1:] {
		if s, ok := g.(string); ok {
			waiting[s] = true
		}
	}
	ackKey := e.keys.RecallAcks(rid)
	defer e.rdb.Del(context.WithoutCancel(ctx), ackKey)
	// A gateway that neither acknowledges nor renews its heartbeat is gone
	// within one heartbeat; twice that and more is a fault, not a wait.
	give := time.Now().Add(2*e.leases.cfg.Heartbeat + e.cfg.ScriptTimeout)
	for len(waiting) > 0 {
		got, err := e.rdb.BLPop(ctx, time.Second, ackKey).Result()
		if err == nil {
			delete(waiting, got[1])
			continue
		}
		if !errors.Is(err, redis.Nil) {
			return unavailable(err)
		}
		if err := e.dropGoneGateways(ctx, waiting); err != nil {
			return err
		}
		if len(waiting) > 0 && time.Now().After(give) {
			names := make([]string, 0, len(waiting))
			for g := range waiting {
				names = append(names, g)
			}
			sort.Strings(names)
			return fmt.Errorf("%w: gateways %s neither acknowledged the lease recall nor expired", ErrUnavailable,
				strings.Join(names, ", "))
		}
	}
	return nil
}

// dropGoneGateways removes from waiting the gateways whose heartbeat ran
// out by Redis's clock (the set's scores are Unix ms; compared in Redis,
// as integers in the range's bound, not read back as floats).
func (e *Engine) dropGoneGateways(ctx context.Context, waiting map[string]bool) error {
	now, err := e.rdb.Time(ctx).Result()
	if err != nil {
		return unavailable(err)
	}
	alive, err := e.rdb.ZRangeByScore(ctx, e.keys.Gateways(), &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(now.UnixMilli(), 10), Max: "+inf"}).Result()
	if err != nil {
		return unavailable(err)
	}
	still := make(map[string]bool, len(alive))
	for _, g := range alive {
		still[g] = true
	}
	for g := range waiting {
		if !still[g] {
			delete(waiting, g)
		}
	}
	return nil
}

// withLeasesRecalled runs a balance change with the leases of the users
// (or the project) recalled before it, so the credits they hold are back
// and a removal sees them, and after it, so the next request takes a lease
// from the changed balances in waterfall order. A lease taken between the
// first recall and the change can make a removal refuse; it is then tried
// once more after another recall.
func (e *Engine) withLeasesRecalled(ctx context.Context, project int64, users []int64, change func() error) error {
	if err := e.recall(ctx, project, users...); err != nil {
		return err
	}
	err := change()
	if errors.Is(err, ErrInsufficient) {
		if err := e.recall(ctx, project, users...); err != nil {
			return err
		}
		err = change()
	}
	if err != nil {
		return err
	}
	return e.recall(ctx, project, users...)
}

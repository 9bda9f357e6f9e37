package metering

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Changing the shard count (Config.RedisShards, the Caddyfile's
// redis_shards) changes every key's name. Redis records the count the
// keys are laid out in ({prefix}:layout; missing means one, the layout
// before shards). The first gateway to verify Redis with another count
// moves the keys, under the heal lock (heal.go), before anything uses
// them:
//
//  1. every event in the old layout's streams is applied to the ledger,
//     which then holds every balance change;
//  2. the old layout's dead letters are copied to the new first shard's
//     dead-letter stream;
//  3. the old layout's keys are deleted, except the deployment's own
//     (key index, gateways, recalls), and the key index is marked for a
//     new sync;
//  4. the new shards are healed as a Redis that lost everything would be
//     (checkpoint 0): balances load from the ledger on first use, open
//     reservations and credit leases are restored from their ledger
//     events;
//  5. the new count is recorded.
//
// Every gateway must be stopped before the count changes and started with
// the new one: a gateway still running with the old count would go on
// using the old keys (docs/operations.md).

// storedLayout is the shard count Redis's keys are laid out in.
func (h healer) storedLayout(ctx context.Context) (int, error) {
	v, err := h.rdb.Get(ctx, h.keys.Layout()).Result()
	if errors.Is(err, redis.Nil) {
		return 1, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxRedisShards {
		return 0, errors.New("redis key " + h.keys.Layout() + " holds " + strconv.Quote(v) + ", not a shard count")
	}
	return n, nil
}

// recordLayout records this engine's shard count as the keys' layout.
func (h healer) recordLayout(ctx context.Context) error {
	return h.rdb.Set(ctx, h.keys.Layout(), len(h.keys.Shards()), 0).Err()
}

// migrateLayout moves the keys from a layout of `from` shards to this
// engine's (steps 1 to 3 above; the caller heals and records the count).
func (h healer) migrateLayout(ctx context.Context, from int) error {
	old, err := NewRedisKeys(strings.Trim(h.keys.Prefix(), "{}"), from)
	if err != nil {
		return err
	}
	h.log.Warn("Redis keys are laid out in another number of shards than this gateway's redis_shards: moving them; every gateway must use the same number",
		zap.Int("from_shards", from), zap.Int("to_shards", len(h.keys.Shards())))
	applied := 0
	for i := range old.Shards() {
		n, err := h.drainShardStream(ctx, old.Shard(i))
		applied += n
		if err != nil {
			return err
		}
	}
	letters := 0
	for i := range old.Shards() {
		n, err := h.copyDeadLetters(ctx, old.Shard(i), h.keys.Shard(0))
		letters += n
		if err != nil {
			return err
		}
	}
	deleted := 0
	for i := range old.Shards() {
		n, err := h.deleteTagged(ctx, old.Shard(i).Tag())
		deleted += n
		if err != nil {
			return err
		}
	}
	if err := h.rdb.Del(ctx, h.keys.KeyIndexSynced()).Err(); err != nil {
		return err
	}
	// The new shards start from nothing: the heal that follows reloads
	// them whole.
	for _, sh := range h.keys.Shards() {
		if err := h.rdb.Del(ctx, sh.Epoch(), sh.Checkpoint()).Err(); err != nil {
			return err
		}
	}
	h.log.Warn("old Redis key layout moved out", zap.Int("events_applied", applied),
		zap.Int("dead_letters_copied", letters), zap.Int("keys_deleted", deleted))
	return nil
}

// copyDeadLetters appends a shard's dead letters to another shard's
// dead-letter stream (new ids; their fields, entry id and reason kept).
func (h healer) copyDeadLetters(ctx context.Context, from, to *ShardKeys) (int, error) {
	if from.DeadLetters() == to.DeadLetters() {
		return 0, nil
	}
	msgs, err := h.rdb.XRange(ctx, from.DeadLetters(), "-", "+").Result()
	if err != nil {
		return 0, err
	}
	for _, m := range msgs {
		if err := h.rdb.XAdd(ctx, &redis.XAddArgs{Stream: to.DeadLetters(), Values: m.Values}).Err(); err != nil {
			return 0, err
		}
	}
	return len(msgs), nil
}

// deleteTagged deletes the keys under a hash tag, but for the
// deployment's own (under its tag too when the layout had one shard).
// In a Redis Cluster every master is scanned.
func (h healer) deleteTagged(ctx context.Context, tag string) (int, error) {
	keep := map[string]bool{h.keys.KeyIndex(): true, h.keys.KeyIndexSynced(): true, h.keys.Gateways(): true,
		h.keys.Layout(): true}
	recalls := h.keys.Recalls()
	var deleted atomic.Int64 // ForEachMaster scans the masters at once
	scan := func(ctx context.Context, c redis.Cmdable) error {
		iter := c.Scan(ctx, 0, tag+":*", 1000).Iterator()
		var batch []string
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			// One by one: a cluster refuses DEL of keys in several slots,
			// and these share one anyway.
			for _, k := range batch {
				if err := c.Del(ctx, k).Err(); err != nil {
					return err
				}
			}
			deleted.Add(int64(len(batch)))
			batch = batch[:0]
			return nil
		}
		for iter.Next(ctx) {
			k := iter.Val()
			if keep[k] || strings.HasPrefix(k, recalls) {
				continue
			}
			if batch = append(batch, k); len(batch) == 1000 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := iter.Err(); err != nil {
			return err
		}
		return flush()
	}
	var err error
	if c, ok := h.rdb.(*redis.ClusterClient); ok {
		err = c.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error { return scan(ctx, node) })
	} else {
		err = scan(ctx, h.rdb)
	}
	return int(deleted.Load()), err
}

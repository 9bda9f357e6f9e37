package metering

import (
	"embed"
	"fmt"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/metering/internal/scriptrun"
)

// RedisKeys names every Redis key Tollgate uses. The keys are split into
// shards, each under a hash tag of its own, so that a Redis Cluster spreads
// them over its masters while every script still touches one slot:
//
//   - a project's hash, its users' hashes, in-flight sets, reservations and
//     credit leases, and the event stream their scripts append to, are all
//     in the project's shard; a user in no project is in the shard its id
//     picks (ShardOf);
//   - each shard has its own event stream, open-reservation and
//     credit-lease sets, price version, fence epoch and heal checkpoint, so
//     the reconciler, the sweeper and the healer work shard by shard;
//   - the keys no money script touches (the key index, the gateways and
//     their recalls) share the deployment's own tag, "{prefix}".
//
// With one shard (the default) the shard's tag is the deployment's tag, so
// the names are those Tollgate used before it had shards.
type RedisKeys struct {
	tag    string // "{tollgate}"
	shards []ShardKeys
}

// MaxRedisShards bounds Config.RedisShards: every shard has a stream the
// reconciler reads and a set the sweeper scans.
const MaxRedisShards = 256

// ShardKeys names one shard's keys. Its fixed names (the ones every charge,
// reservation or settlement passes) are built once rather than per request.
type ShardKeys struct {
	index                                                               int
	tag                                                                 string
	events, dead, leases, creditLeases, priceVersion, epoch, checkpoint string
}

// NewRedisKeys validates a key prefix (tests give each run its own) and a
// shard count (1 to MaxRedisShards).
func NewRedisKeys(prefix string, shards int) (RedisKeys, error) {
	if prefix == "" || strings.ContainsAny(prefix, "{}: \t\n") {
		return RedisKeys{}, fmt.Errorf("redis key prefix %q must be non-empty without braces, colons or spaces", prefix)
	}
	if shards < 1 || shards > MaxRedisShards {
		return RedisKeys{}, fmt.Errorf("redis shards must be 1 to %d, not %d", MaxRedisShards, shards)
	}
	k := RedisKeys{tag: "{" + prefix + "}", shards: make([]ShardKeys, shards)}
	for i := range k.shards {
		tag := k.tag
		if shards > 1 {
			tag = shardTag(prefix, i, shards)
		}
		k.shards[i] = ShardKeys{index: i, tag: tag, events: tag + ":events", dead: tag + ":events:dead",
			leases: tag + ":leases", creditLeases: tag + ":cl", priceVersion: tag + ":prices:v",
			epoch: tag + ":epoch", checkpoint: tag + ":ckpt"}
	}
	return k, nil
}

// shardTag is shard i's hash tag, "{prefix.shards.i.n}" (the count in it
// keeps layouts of different counts apart): n is the first number
// that puts the tag's Redis Cluster slot near the middle of the i-th of
// `shards` equal slot ranges. redis-cli --cluster create gives each master
// a contiguous range of slots, so shards spread evenly over any number of
// masters that divides them, and about evenly over any other. The search
// is deterministic: every gateway finds the same tags.
func shardTag(prefix string, i, shards int) string {
	width := clusterSlots / shards
	target := width*i + width/2
	slack := max(width/8, 1)
	for n := 0; ; n++ {
		tag := prefix + "." + strconv.Itoa(shards) + "." + strconv.Itoa(i) + "." + strconv.Itoa(n)
		if slot := ClusterSlot(tag); slot >= target-slack && slot <= target+slack {
			return "{" + tag + "}"
		}
	}
}

// Prefix is the deployment's hash tag itself, "{<prefix>}": it names the
// deployment where no key does (heal.go's advisory lock, the fence).
func (k RedisKeys) Prefix() string { return k.tag }

// Shards are every shard's keys, in order.
func (k RedisKeys) Shards() []ShardKeys { return k.shards }

// Shard is shard i's keys.
func (k RedisKeys) Shard(i int) *ShardKeys { return &k.shards[i] }

// ShardOf is the shard of a user in project projectID (0: none), or of the
// project itself (userID 0).
func (k RedisKeys) ShardOf(projectID, userID int64) *ShardKeys {
	id := projectID
	if id == 0 {
		id = userID
	}
	return &k.shards[uint64(id)%uint64(len(k.shards))]
}

// ProjectShard is the shard of a project's keys and its users'.
func (k RedisKeys) ProjectShard(projectID int64) *ShardKeys { return k.ShardOf(projectID, 0) }

// ShardOfKey is the index of the shard a key (one of ShardKeys's) is in.
func (k RedisKeys) ShardOfKey(key string) int {
	for i := range k.shards {
		if strings.HasPrefix(key, k.shards[i].tag+":") {
			return i
		}
	}
	return 0
}

// Layout holds the shard count the keys were last laid out in (missing:
// one, as before shards); a gateway with another count moves them
// (layout.go).
func (k RedisKeys) Layout() string { return k.tag + ":layout" }

// KeyIndex maps key hashes to user ids.
func (k RedisKeys) KeyIndex() string { return k.tag + ":keys" }

// KeyIndexSynced exists while the key index is known to hold every live key
// in Postgres, so a miss in the index needs no Postgres query.
func (k RedisKeys) KeyIndexSynced() string { return k.tag + ":keys:synced" }

// Index is the shard's number.
func (s *ShardKeys) Index() int { return s.index }

// Tag is the shard's hash tag.
func (s *ShardKeys) Tag() string { return s.tag }

func (s *ShardKeys) User(id int64) string    { return s.tag + ":u:" + strconv.FormatInt(id, 10) }
func (s *ShardKeys) Project(id int64) string { return s.tag + ":p:" + strconv.FormatInt(id, 10) }

// InFlight is a user's sorted set of requests in flight: charge event id →
// lease deadline (Unix ms). Charges add to it, release.lua removes, and
// deleting the user refuses while a live member remains.
func (s *ShardKeys) InFlight(id int64) string { return s.tag + ":f:" + strconv.FormatInt(id, 10) }

// Reservation is the hash of one reservation (variable cost), named by its
// hold event id, from reserve.lua until settle.lua ends it.
func (s *ShardKeys) Reservation(id string) string { return s.tag + ":r:" + id }

// Leases is the sorted set of the shard's open reservations: id → lease
// deadline (Unix ms). The sweeper settles the members whose deadline passed.
func (s *ShardKeys) Leases() string { return s.leases }

// Events is the stream the shard's balance changes are appended to.
func (s *ShardKeys) Events() string { return s.events }

// DeadLetters is the stream of the shard's entries the reconciler could
// never record, each with its reason.
func (s *ShardKeys) DeadLetters() string { return s.dead }

// PriceVersion holds the price table version the shard's scripts check
// (price_cache.go): every shard is told of a new version.
func (s *ShardKeys) PriceVersion() string { return s.priceVersion }

// Epoch holds the run id of the Redis server the shard was last verified
// on against the ledger (fence.go); a server with another run id
// restarted, or took the shard over in a failover.
func (s *ShardKeys) Epoch() string { return s.epoch }

// Checkpoint holds the ledger sequence number up to which the shard is
// known to reflect every event in Postgres (heal.go).
func (s *ShardKeys) Checkpoint() string { return s.checkpoint }

//go:embed *.lua
var luaFiles embed.FS

// mustScript is an embedded script, named after its file ("settle.lua":
// "settle"), the name its latency metric carries.
func mustScript(name string) *luaScript {
	src, err := luaFiles.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return scriptrun.NewNamedScript(strings.TrimSuffix(name, ".lua"), string(src))
}

// mustScriptWithPrelude is a money script joined after prelude.lua, the
// balance rules the money scripts share (one script per operation, one
// copy of the rules), and after defs, lines of constants that build one
// script of several from a file (see fixed_charge.lua). Joined here, at
// load time, so Redis sees one script. It is named after its file.
func mustScriptWithPrelude(name string) *luaScript {
	return mustScriptVariant(strings.TrimSuffix(name, ".lua"), name)
}

// mustScriptVariant is mustScriptWithPrelude for one script of several
// built from one file by defs; each variant has a name of its own.
func mustScriptVariant(variant, name string, defs ...string) *luaScript {
	prelude, err := luaFiles.ReadFile("prelude.lua")
	if err != nil {
		panic(err)
	}
	body, err := luaFiles.ReadFile(name)
	if err != nil {
		panic(err)
	}
	src := string(prelude) + "\n"
	for _, d := range defs {
		src += d + "\n"
	}
	src += string(body)
	return scriptrun.NewNamedScript(variant, src)
}

var (
	loadScript       = mustScript("load.lua")
	adjustPoolScript = mustScript("adjust_pool.lua")
	ackScript        = mustScript("ack.lua")
	settleScript     = mustScript("settle.lua")
	renewScript      = mustScript("renew.lua")
)

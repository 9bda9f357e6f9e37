package metering

import (
	"embed"
	"fmt"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/metering/internal/scriptrun"
)

// RedisKeys names every Redis key Tollgate uses. All share one hash tag, so
// each script touches a single slot and Redis Cluster stays possible.
type RedisKeys struct {
	tag string // "{tollgate}"
	// The fixed names every charge, reservation or settlement passes,
	// built once rather than concatenated per request.
	events, leases, priceVersion string
}

// NewRedisKeys validates a key prefix (tests give each run its own).
func NewRedisKeys(prefix string) (RedisKeys, error) {
	if prefix == "" || strings.ContainsAny(prefix, "{}: \t\n") {
		return RedisKeys{}, fmt.Errorf("redis key prefix %q must be non-empty without braces, colons or spaces", prefix)
	}
	tag := "{" + prefix + "}"
	return RedisKeys{tag: tag, events: tag + ":events", leases: tag + ":leases", priceVersion: tag + ":prices:v"}, nil
}

func (k RedisKeys) User(id int64) string    { return k.tag + ":u:" + strconv.FormatInt(id, 10) }
func (k RedisKeys) Project(id int64) string { return k.tag + ":p:" + strconv.FormatInt(id, 10) }

// InFlight is a user's sorted set of requests in flight: charge event id →
// lease deadline (Unix ms). Charges add to it, release.lua removes, and
// deleting the user refuses while a live member remains.
func (k RedisKeys) InFlight(id int64) string { return k.tag + ":f:" + strconv.FormatInt(id, 10) }

// Reservation is the hash of one reservation (variable cost), named by its
// hold event id, from reserve.lua until settle.lua ends it.
func (k RedisKeys) Reservation(id string) string { return k.tag + ":r:" + id }

// Leases is the sorted set of every open reservation: id → lease deadline
// (Unix ms). The sweeper settles the members whose deadline passed.
func (k RedisKeys) Leases() string { return k.leases }

// Events is the stream every balance change is appended to.
func (k RedisKeys) Events() string { return k.events }

// KeyIndex maps key hashes to user ids.
func (k RedisKeys) KeyIndex() string { return k.tag + ":keys" }

// KeyIndexSynced exists while the key index is known to hold every live key
// in Postgres, so a miss in the index needs no Postgres query.
func (k RedisKeys) KeyIndexSynced() string { return k.tag + ":keys:synced" }

// Epoch holds the run id of the Redis server Tollgate last verified
// against the ledger (fence.go); a server with another run id restarted.
func (k RedisKeys) Epoch() string { return k.tag + ":epoch" }

// Checkpoint holds the ledger sequence number up to which Redis is known
// to reflect every event in Postgres (heal.go).
func (k RedisKeys) Checkpoint() string { return k.tag + ":ckpt" }

// Prefix is the hash tag itself, "{<prefix>}": it names the deployment
// where no key does (heal.go's advisory lock, the fence check).
func (k RedisKeys) Prefix() string { return k.tag }

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

package scriptrun_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tollgate/tollgate/metering/internal/scriptrun"
)

// store keeps its arguments, in order, in the list KEYS[1] and answers
// how many it got.
var store = scriptrun.NewScript(`redis.call('DEL', KEYS[1])
if #ARGV > 0 then redis.call('RPUSH', KEYS[1], unpack(ARGV)) end
return {#ARGV}`)

// Arguments appended with Str and Int reach Redis as the values, in
// order with boxed ones, past the call's unboxed storage too; a call taken
// from the pool again carries only its own arguments.
func TestTypedArgumentsReachRedis(t *testing.T) {
	srv := startRedis(t)
	rdb := srv.client(t)
	r := newRunner(t, rdb, 2*time.Second)
	ctx := context.Background()

	// More than either store of 24 holds, mixed with boxed arguments and
	// with empty strings and negative, large and small integers.
	var want []string
	c := scriptrun.Get(store)
	c.Keys = append(c.Keys, "typed-args")
	for i := range 40 {
		s := fmt.Sprintf("s%d", i)
		if i%7 == 0 {
			s = ""
		}
		n := int64(i) * -123456789
		if i%5 == 0 {
			n = int64(i)
		}
		c.Str(s)
		c.Int(n)
		c.Args = append(c.Args, "boxed", i)
		want = append(want, s, strconv.FormatInt(n, 10), "boxed", strconv.Itoa(i))
	}
	for i := range 40 {
		if got := c.StringArg(4 * i); got != want[4*i] {
			t.Fatalf("StringArg(%d) = %q, want %q", 4*i, got, want[4*i])
		}
		if got := c.StringArg(4*i + 2); got != "boxed" {
			t.Fatalf("StringArg(%d) = %q, want the boxed string", 4*i+2, got)
		}
	}
	if err := r.Run(ctx, c); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Res, []int64{int64(len(want))}) {
		t.Fatalf("the script got %v arguments, want %d", c.Res, len(want))
	}
	scriptrun.Put(c)
	got, err := rdb.LRange(ctx, "typed-args", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Redis got %q,\nwant %q", got, want)
	}

	// Reused: two arguments only, the old ones gone.
	c = scriptrun.Get(store)
	c.Keys = append(c.Keys, "typed-args")
	c.Str("again")
	c.Int(7)
	if err := r.Run(ctx, c); err != nil {
		t.Fatal(err)
	}
	scriptrun.Put(c)
	got, err = rdb.LRange(ctx, "typed-args", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"again", "7"}) {
		t.Fatalf("reused call: Redis got %q", got)
	}
}

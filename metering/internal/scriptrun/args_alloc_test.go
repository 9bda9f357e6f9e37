package scriptrun

import "testing"

// Filling a call with a charge's worth of keys and unboxed arguments
// allocates nothing (the point of Str and Int). One call is reused rather
// than taken from the pool: under the race detector sync.Pool drops items
// on purpose, which would count as allocations of the pool, not of Str
// and Int.
func TestTypedArgumentsDoNotAllocate(t *testing.T) {
	keys := []string{"user:1", "project:1", "events"}
	vals := []string{"key-hash", "7", "", "1733011200", "24311", "event-1", "GET /bench", "1"}
	c := Get(NewScript("return 1"))
	defer Put(c)
	fill := func() {
		c.Keys = append(c.Keys[:0], keys...)
		c.Args = c.Args[:0]
		c.resetArgs()
		for _, v := range vals {
			c.Str(v)
		}
		c.Int(1733011200123)
		c.Int(-1 << 40)
	}
	fill() // the slices grow once
	if allocs := testing.AllocsPerRun(100, fill); allocs != 0 {
		t.Errorf("filling a call allocates %.1f times, want 0", allocs)
	}
}

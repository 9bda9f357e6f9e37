package metering

import (
	"math"
	"math/big"
	"testing"
)

// TestWideSumIsExact: sums that leave int64's range on the way, or for
// good, reach Postgres exactly (as SQL's sum() over bigint would).
func TestWideSumIsExact(t *testing.T) {
	cases := [][]int64{
		{},
		{1, -1},
		{math.MaxInt64, math.MaxInt64, -math.MaxInt64},
		{math.MaxInt64, 1},
		{math.MinInt64, math.MinInt64, math.MinInt64},
		{math.MinInt64, -1, 5},
		{-7, 3, math.MaxInt64, math.MinInt64},
	}
	for _, vs := range cases {
		var add, sub wideSum
		want := new(big.Int)
		for _, v := range vs {
			add.add(v)
			sub.sub(v)
			want.Add(want, big.NewInt(v))
		}
		for _, c := range []struct {
			s    wideSum
			want *big.Int
		}{{add, want}, {sub, new(big.Int).Neg(want)}} {
			n, err := c.s.NumericValue()
			if err != nil || !n.Valid || n.Exp != 0 || n.Int.Cmp(c.want) != 0 {
				t.Errorf("sum of %v: got %v (exp %d, err %v), want %v", vs, n.Int, n.Exp, err, c.want)
			}
		}
	}
}

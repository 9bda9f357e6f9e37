package metering

import (
	"fmt"
	"strings"
)

// Bucket names one of the four balances a charge draws from, in the usual
// order. A route may restrict and order them (BucketOrder); an admin
// adjusts the personal two (AdjustCredits) and a project's pool
// (AdjustPool).
type Bucket string

const (
	BucketAllowance Bucket = "allowance"
	BucketPool      Bucket = "pool"
	BucketAwarded   Bucket = "awarded"
	BucketPurchased Bucket = "purchased"
)

// bucketLetters are the scripts' one-letter bucket names.
var bucketLetters = map[Bucket]byte{BucketAllowance: 'a', BucketPool: 'p',
	BucketAwarded: 'w', BucketPurchased: 'r'}

// BucketOrder is the buckets a route may draw from, in order. Nil: all
// four in the usual order. Refunds go back in the reverse order.
type BucketOrder []Bucket

// ParseBucketOrder reads bucket names; each at most once.
func ParseBucketOrder(s []string) (BucketOrder, error) {
	if len(s) == 0 {
		return nil, nil
	}
	out := make(BucketOrder, 0, len(s))
	for _, name := range s {
		b := Bucket(strings.ToLower(strings.TrimSpace(name)))
		if _, ok := bucketLetters[b]; !ok {
			return nil, invalid("buckets", fmt.Sprintf("unknown bucket %q (allowance, pool, awarded, purchased)", name))
		}
		for _, seen := range out {
			if seen == b {
				return nil, invalid("buckets", fmt.Sprintf("bucket %q named twice", name))
			}
		}
		out = append(out, b)
	}
	return out, nil
}

// letters is the order as the scripts take it ("apwr" for nil).
func (o BucketOrder) letters() (string, error) {
	if len(o) == 0 {
		return "apwr", nil
	}
	b := make([]byte, 0, 4)
	for _, name := range o {
		l, ok := bucketLetters[name]
		if !ok || strings.IndexByte(string(b), l) >= 0 {
			return "", invalid("buckets", fmt.Sprintf("bad bucket order %v", o))
		}
		b = append(b, l)
	}
	return string(b), nil
}

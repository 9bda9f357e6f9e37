package metering

// TEMPORARY: the issue-4 contract's signatures (reserve/settle/sweeper: engineer B) so the handler compiles before their
// branches land. Deleted by the merge of i4-prices and i4-reserve.

import (
	"context"
	"errors"
	"time"
)

type BucketName string
type BucketOrder []BucketName

func ParseBucketOrder(s []string) (BucketOrder, error) {
	var o BucketOrder
	for _, b := range s {
		switch b {
		case "allowance", "pool", "awarded", "purchased":
			o = append(o, BucketName(b))
		default:
			return nil, errors.New("unknown bucket " + b)
		}
	}
	return o, nil
}

type UnknownModelPolicy struct {
	Reject  bool
	Default Price
}

type ReserveRequest struct {
	Key      string
	Model    string
	Estimate Units
	Fixed    *Credits
	Unknown  UnknownModelPolicy
	Buckets  BucketOrder
	Request  string
	Lease    time.Duration
}

type ReserveStatus int

const (
	Reserved ReserveStatus = iota
	ReserveInsufficient
	ReserveKeyRefused
	ReserveUnknownModel
)

type Reservation struct {
	ID                      string
	Status                  ReserveStatus
	UserID                  int64
	Username, Project       string
	Model                   string
	Price                   Price
	Reserved                Credits
	Taken                   Split
	Remaining               Credits
}

func (e *Engine) Reserve(ctx context.Context, r ReserveRequest) (*Reservation, error) {
	return nil, errors.New("stub")
}

type Outcome struct {
	Units    Units
	Cost     *Credits
	Refund   bool
	Status   int
	Duration time.Duration
}

type SettleResult struct{ Charged, Refunded, Overrun, Shortfall, Remaining Credits }

func (e *Engine) Settle(ctx context.Context, r *Reservation, o Outcome) (SettleResult, error) {
	return SettleResult{}, errors.New("stub")
}
func (e *Engine) RenewLease(ctx context.Context, r *Reservation, d time.Duration) error {
	return errors.New("stub")
}

type SweepPolicy string
type SweeperConfig struct {
	Interval time.Duration
	Policy   SweepPolicy
	Batch    int
}
type Sweeper struct{}

func (e *Engine) NewSweeper(cfg SweeperConfig) (*Sweeper, error) { return &Sweeper{}, nil }
func (s *Sweeper) Start(ctx context.Context) error                 { return nil }
func (s *Sweeper) Stop()                                            {}
func (s *Sweeper) RunOnce(ctx context.Context) (int, error)         { return 0, nil }

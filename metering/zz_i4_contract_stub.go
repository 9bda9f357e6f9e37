package metering

// TEMPORARY: the issue-4 contract's signatures (the sweeper: engineer B) so the handler compiles before their
// branches land. Deleted by the merge of i4-reserve's sweeper.

import (
	"context"
	"time"
)

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

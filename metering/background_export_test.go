package metering

// Running reports whether the reconciler's loop runs (background_test.go).
func (r *Reconciler) Running() bool { return r.bg.running() }

// Running reports whether the sweeper's loop runs (background_test.go).
func (s *Sweeper) Running() bool { return s.bg.running() }

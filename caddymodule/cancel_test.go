package caddymodule_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

// Defect 13: a client that leaves before the upstream answers is charged
// the prompt (the upstream may have read it), and the event records no
// upstream status: reverse_proxy's own 499 is not an answer.
func TestClientGoneBeforeTheAnswerPaysThePrompt(t *testing.T) {
	w := setupChecks(t)
	start := 10 * metering.Micro
	c := w.client(w.user(t, "ann", start))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Chat.Completions.New(ctx, chatParams("slowstart", 50))
		done <- err
	}()
	<-w.up.slowStarted // the upstream has the request and has not answered
	cancel()
	require.Error(t, <-done)

	prompt := costOf(chatInput(t, "slowstart", 50, false), 0)
	require.Equal(t, start-prompt, w.settled(t, "ann"))
	events := w.usageEvents(t, "ann")
	require.Len(t, events, 1)
	require.Equal(t, int64(prompt), events[0].cost)
	require.Nil(t, events[0].status, "no upstream status was received")
	w.b.AssertConsistent(t)
}

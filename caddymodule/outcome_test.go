package caddymodule

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/tollgate/tollgate/metering"
)

func TestOutcome(t *testing.T) {
	t.Parallel()
	chat := &estimate{Kind: epChat, Units: metering.Units{InputTokens: 20, OutputTokens: 100}}
	speech := &estimate{Kind: epSpeech, Units: metering.Units{Characters: 50, InputTokens: 13}}
	images := &estimate{Kind: epImages, Units: metering.Units{Images: 4, InputTokens: 2}}
	used := usageInfo{found: true, inputTokens: 18, outputTokens: 33}
	res := &metering.Reservation{Reserved: 7 * metering.Micro}
	upstreamDown := errors.New("dial tcp: connection refused")
	cases := []struct {
		name       string
		est        *estimate
		cw         capture
		err        error
		clientGone bool
		want       metering.Outcome
	}{
		{"usage", chat, capture{status: 200, json: true, usage: used}, nil, false,
			metering.Outcome{Status: 200, Units: metering.Units{InputTokens: 18, OutputTokens: 33}}},
		{"5xx refunds", chat, capture{status: 503, usage: used}, nil, false, metering.Outcome{Status: 503, Refund: true}},
		{"no answer refunds", chat, capture{}, upstreamDown, false, metering.Outcome{Refund: true}},
		{"client gone before the answer: input, no upstream status", chat, capture{}, errors.New("context canceled"), true,
			metering.Outcome{Units: metering.Units{InputTokens: 20}, Status: -1}},
		{"client gone: reverse_proxy's 499 is not an answer", chat, capture{canceled: true}, nil, true,
			metering.Outcome{Units: metering.Units{InputTokens: 20}, Status: -1}},
		{"the served model is reported", chat, capture{status: 200, json: true, usage: used, model: "m-2025"}, nil, false,
			metering.Outcome{Status: 200, Units: metering.Units{InputTokens: 18, OutputTokens: 33}, ServedModel: "m-2025"}},
		{"4xx: nothing used", chat, capture{status: 429, json: true}, nil, false, metering.Outcome{Status: 429}},
		{"stream cut short: prompt + delivered", chat, capture{status: 200, sse: true, streamedBytes: 9}, nil, true,
			metering.Outcome{Status: 200, Units: metering.Units{InputTokens: 20, OutputTokens: 3}}},
		{"JSON without usage: the estimate", chat, capture{status: 200, json: true}, nil, false,
			metering.Outcome{Status: 200, Units: chat.Units}},
		{"speech: exact input", speech, capture{status: 200}, nil, false, metering.Outcome{Status: 200, Units: speech.Units}},
		{"images: what came back", images, capture{status: 200, json: true, usage: usageInfo{images: 3, hasImages: true}}, nil, false,
			metering.Outcome{Status: 200, Units: metering.Units{Images: 3, InputTokens: 2}}},
		{"images with token usage", images, capture{status: 200, json: true, usage: usageInfo{found: true, inputTokens: 5, outputTokens: 9, images: 1, hasImages: true}}, nil, false,
			metering.Outcome{Status: 200, Units: metering.Units{Images: 1, InputTokens: 5, OutputTokens: 9}}},
	}
	h := &Handler{log: zap.NewNop()}
	for _, c := range cases {
		cw := c.cw
		require.Equal(t, c.want, h.outcome(c.est, &cw, res, c.err, c.clientGone), c.name)
	}

	ch := &Handler{log: zap.NewNop(), CostHeader: "X-Cost"}
	for value, want := range map[string]metering.Credits{"0.25": 250_000, "3": 3 * metering.Micro, "": 7 * metering.Micro, "abc": 7 * metering.Micro, "-1": 7 * metering.Micro} {
		o := ch.outcome(&estimate{}, &capture{status: 200, cost: value}, res, nil, false)
		require.NotNil(t, o.Cost, value)
		require.Equal(t, want, *o.Cost, value)
	}
	o := ch.outcome(&estimate{}, &capture{status: 500, cost: "1"}, res, nil, false)
	require.True(t, o.Refund)
}

package caddymodule

import (
	"strings"
	"testing"
)

// BenchmarkEstimate: a typical chat request with a tool, and a long one.
func BenchmarkEstimate(b *testing.B) {
	chat := `{"model":"gpt-4o","messages":[{"role":"system","content":"You are a helpful assistant."},` +
		`{"role":"user","content":"What's the weather like in Boston today? ` + strings.Repeat("Please be brief. ", 40) + `"}],` +
		`"tools":[{"type":"function","function":{"name":"get_current_weather","description":"Get the current weather",` +
		`"parameters":{"type":"object","properties":{"location":{"type":"string"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["location"]}}}],"stream":true}`
	long := `{"model":"gpt-4o","messages":[` + strings.Repeat(`{"role":"user","content":"`+strings.Repeat("lorem ipsum ", 160)+`"},`, 100) +
		`{"role":"user","content":"end"}]}`
	for _, c := range []struct{ name, body string }{{"chat-1KB", chat}, {"chat-190KB", long}} {
		body := []byte(c.body)
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := estimateRequest(epChat, "application/json", body, estimateConfig{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

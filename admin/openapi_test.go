package admin

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestOpenAPICoversEveryRoute walks the router's route tables and the
// OpenAPI document: every route is documented, every documented operation
// is served, and every operation says what it answers.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(openAPIDocument, &doc))
	require.True(t, strings.HasPrefix(doc.OpenAPI, "3."), "an OpenAPI 3 document")

	served := map[string]bool{}
	servedQuery := map[string][]string{}
	for _, rt := range (&api{}).routes() {
		// OpenAPI has no rest-of-path wildcard: {model...} is documented as {model}.
		op := strings.ToLower(rt.method) + " " + strings.ReplaceAll(rt.path, "...}", "}")
		served[op] = true
		servedQuery[op] = sortedCopy(rt.query)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, raw := range ops {
			var op struct {
				OperationID string                     `json:"operationId"`
				Responses   map[string]json.RawMessage `json:"responses"`
				Parameters  []struct {
					Name string `json:"name"`
					In   string `json:"in"`
				} `json:"parameters"`
			}
			require.NoError(t, json.Unmarshal(raw, &op), "%s %s", method, path)
			require.NotEmpty(t, op.OperationID, "%s %s has an operationId", method, path)
			require.NotEmpty(t, op.Responses, "%s %s lists its responses", method, path)
			documented[method+" "+path] = true
			// The query parameters documented are exactly those the route
			// table declares, which are the only ones the route accepts.
			var query []string
			for _, p := range op.Parameters {
				if p.In == "query" {
					query = append(query, p.Name)
				}
			}
			require.Equal(t, servedQuery[method+" "+path], sortedCopy(query), "query parameters of %s %s", method, path)
		}
	}
	require.Equal(t, sortedKeys(served), sortedKeys(documented), "routes served vs routes documented")
}

func sortedCopy(s []string) []string {
	out := append([]string{}, s...)
	sort.Strings(out)
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

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
	for _, rt := range (&api{}).routes() {
		// OpenAPI has no rest-of-path wildcard: {model...} is documented as {model}.
		served[strings.ToLower(rt.method)+" "+strings.ReplaceAll(rt.path, "...}", "}")] = true
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, raw := range ops {
			var op struct {
				OperationID string                     `json:"operationId"`
				Responses   map[string]json.RawMessage `json:"responses"`
			}
			require.NoError(t, json.Unmarshal(raw, &op), "%s %s", method, path)
			require.NotEmpty(t, op.OperationID, "%s %s has an operationId", method, path)
			require.NotEmpty(t, op.Responses, "%s %s lists its responses", method, path)
			documented[method+" "+path] = true
		}
	}
	require.Equal(t, sortedKeys(served), sortedKeys(documented), "routes served vs routes documented")
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

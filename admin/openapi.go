package admin

import (
	_ "embed"
	"encoding/json"
	"net/http"
)

// openAPIDocument describes every route of routes(), written by hand so it
// can say what the code cannot (meanings, units, error cases);
// TestOpenAPICoversEveryRoute keeps the two in step.
//
//go:embed openapi.json
var openAPIDocument []byte

func (a *api) openAPIRoutes() []route {
	return []route{{method: "GET", path: "/openapi.json", h: a.openAPI}}
}

// openAPI: GET /openapi.json → the document, its server URL set to this
// handler's base path.
func (a *api) openAPI(w http.ResponseWriter, r *http.Request) error {
	var doc map[string]any
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		return err // a broken embedded document; the tests catch it first
	}
	doc["servers"] = []map[string]string{{"url": a.base}}
	writeJSON(w, http.StatusOK, doc)
	return nil
}

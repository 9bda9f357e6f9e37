package console

func init() { addCatalog(catalogAudit) }

// catalogAudit: the audit log.
var catalogAudit = map[string]message{
	"page.audit":    {"Audit log", "Protokoll"},
	"audit.actor":   {"Who (token name)", "Wer (Token-Name)"},
	"audit.user":    {"User", "Benutzer"},
	"audit.from":    {"From", "Von"},
	"audit.to":      {"To (included)", "Bis (einschließlich)"},
	"audit.hint":    {"Every change made through the admin API or this console, newest first. Days are UTC days.", "Jede Änderung über die Admin-API oder diese Konsole, die neueste zuerst. Tage sind UTC-Tage."},
	"audit.at":      {"When", "Wann"},
	"audit.action":  {"Action", "Aktion"},
	"audit.target":  {"On", "Betrifft"},
	"audit.details": {"Details", "Einzelheiten"},
	"audit.none":    {"No entries.", "Keine Einträge."},
}

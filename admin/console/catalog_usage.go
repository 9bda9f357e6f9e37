package console

func init() { addCatalog(catalogUsage) }

// catalogUsage: the usage report.
var catalogUsage = map[string]message{
	"page.usage":          {"Usage", "Nutzung"},
	"usage.user":          {"User", "Benutzer"},
	"usage.project":       {"Project", "Projekt"},
	"usage.model":         {"Model", "Modell"},
	"usage.from":          {"From", "Von"},
	"usage.to":            {"To (included)", "Bis (einschließlich)"},
	"usage.group_by":      {"Group by", "Gruppieren nach"},
	"usage.group.day":     {"Day", "Tag"},
	"usage.group.user":    {"User", "Benutzer"},
	"usage.group.project": {"Project", "Projekt"},
	"usage.group.model":   {"Model", "Modell"},
	"usage.group.none":    {"Nothing (totals)", "Nichts (Summen)"},
	"usage.show":          {"Show", "Anzeigen"},
	"usage.hint":          {"Days are UTC days. Without dates: the current month. Usage reaches the report within about a second.", "Tage sind UTC-Tage. Ohne Datum: der laufende Monat. Nutzung erscheint nach etwa einer Sekunde im Bericht."},
	"usage.range":         {"From %s to %s", "Vom %s bis zum %s"},
	"usage.chart":         {"Credits used", "Verbrauchte Credits"},
	"usage.requests":      {"Requests", "Anfragen"},
	"usage.credits":       {"Credits", "Credits"},
	"usage.allowance":     {"From allowance", "Aus Kontingent"},
	"usage.pool":          {"From pool", "Aus Pool"},
	"usage.awarded":       {"From awarded", "Aus zugeteiltem Guthaben"},
	"usage.purchased":     {"From purchased", "Aus gekauftem Guthaben"},
	"usage.total":         {"Total", "Summe"},
	"usage.none":          {"No usage in this range.", "Keine Nutzung in diesem Zeitraum."},
	"usage.no_project":    {"(no project)", "(kein Projekt)"},
	"usage.no_model":      {"(fixed cost)", "(Festpreis)"},
}

package console

// catalog is every string the console shows, in English and German. Keys
// are grouped by screen. Strings with arguments use fmt verbs, in the
// same order in both languages. TestCatalogue checks that every key
// used by a template or page exists and has both languages.
var catalog = map[string]message{}

func init() { addCatalog(catalogCore); addCatalog(catalogPrices) }

var catalogCore = map[string]message{
	// Navigation and layout
	"nav.label":            {"Sections", "Bereiche"},
	"nav.users":            {"Users", "Benutzer"},
	"nav.projects":         {"Projects", "Projekte"},
	"nav.prices":           {"Prices", "Preise"},
	"nav.usage":            {"Usage", "Nutzung"},
	"nav.audit":            {"Audit log", "Protokoll"},
	"role.admin":           {"admin", "Admin"},
	"role.viewer":          {"viewer (read only)", "Betrachter (nur lesen)"},
	"action.logout":        {"Sign out", "Abmelden"},
	"action.signin":        {"Sign in", "Anmelden"},
	"action.back_to_start": {"Back to the users", "Zurück zu den Benutzern"},
	"action.save":          {"Save", "Speichern"},
	"action.cancel":        {"Cancel", "Abbrechen"},
	"action.delete":        {"Delete", "Löschen"},
	"action.copy":          {"Copy", "Kopieren"},
	"action.copied":        {"Copied", "Kopiert"},
	"action.confirm":       {"Confirm", "Bestätigen"},
	"action.filter":        {"Filter", "Filtern"},
	"action.export_csv":    {"Export CSV", "CSV exportieren"},
	"action.next_page":     {"Next page", "Nächste Seite"},
	"action.first_page":    {"First page", "Erste Seite"},
	"status.ok":            {"OK", "OK"},
	"status.down":          {"failing", "gestört"},
	"status.lag":           {"Ledger lag", "Buchungsrückstand"},
	"status.dead_letters":  {"Dead letters", "Unzustellbare Buchungen"},
	"status.unreachable":   {"Status unknown: the health check failed", "Status unbekannt: die Prüfung ist fehlgeschlagen"},
	"chart.empty":          {"No usage in this range", "Keine Nutzung in diesem Zeitraum"},
	"common.none":          {"none", "keines"},
	"common.yes":           {"yes", "ja"},
	"common.no":            {"no", "nein"},
	"common.never":         {"never", "nie"},
	"common.credits":       {"credits", "Credits"},

	// Sign-in
	"page.signin":         {"Sign in to Tollgate", "Bei Tollgate anmelden"},
	"signin.token":        {"Admin token", "Admin-Token"},
	"signin.hint":         {"The admin or viewer token from the gateway's configuration (make run prints it).", "Das Admin- oder Betrachter-Token aus der Konfiguration des Gateways (make run zeigt es an)."},
	"signin.expired":      {"Your session has ended. Please sign in again.", "Ihre Sitzung ist abgelaufen. Bitte melden Sie sich erneut an."},
	"error.signin_failed": {"That token is not valid.", "Dieses Token ist ungültig."},
	"error.signin_wait":   {"Too many failed sign-ins from your address. Try again in %d seconds.", "Zu viele fehlgeschlagene Anmeldungen von Ihrer Adresse. Versuchen Sie es in %d Sekunden erneut."},

	// Errors
	"page.error":             {"Something went wrong", "Etwas ist schiefgegangen"},
	"error.not_found":        {"Not found.", "Nicht gefunden."},
	"error.conflict":         {"That cannot be done right now.", "Das ist gerade nicht möglich."},
	"error.forbidden":        {"Your token may not do that.", "Ihr Token darf das nicht."},
	"error.viewer":           {"You are signed in as a viewer and can only read.", "Sie sind als Betrachter angemeldet und können nur lesen."},
	"error.csrf":             {"This form has expired or did not come from this console. Go back, reload the page and try again.", "Dieses Formular ist abgelaufen oder stammt nicht aus dieser Konsole. Gehen Sie zurück, laden Sie die Seite neu und versuchen Sie es erneut."},
	"error.unavailable":      {"The metering storage is unavailable.", "Der Abrechnungsspeicher ist nicht erreichbar."},
	"error.invalid_argument": {"Please check what you entered.", "Bitte prüfen Sie Ihre Eingaben."},
	"error.too_large":        {"That is too large.", "Das ist zu groß."},
	"error.bad_form":         {"The form could not be read. Reload the page and try again.", "Das Formular konnte nicht gelesen werden. Laden Sie die Seite neu und versuchen Sie es erneut."},
	"error.reveal_disabled":  {"This key cannot be shown.", "Dieser Schlüssel kann nicht angezeigt werden."},
	"error.gone":             {"This link is no longer valid.", "Dieser Link ist nicht mehr gültig."},
	"error.internal":         {"An internal error occurred; the details are in the gateway's log.", "Ein interner Fehler ist aufgetreten; Einzelheiten stehen im Protokoll des Gateways."},
}

var catalogPrices = map[string]message{
	"page.prices":               {"Prices", "Preise"},
	"prices.intro":              {"What each model costs, in credits. A change applies to the next request on every gateway.", "Was jedes Modell kostet, in Credits. Eine Änderung gilt ab der nächsten Anfrage an jedem Gateway."},
	"prices.model":              {"Model", "Modell"},
	"prices.input_per_million":  {"Input / 1M tokens", "Eingabe / 1 Mio. Tokens"},
	"prices.output_per_million": {"Output / 1M tokens", "Ausgabe / 1 Mio. Tokens"},
	"prices.per_character":      {"Per character", "Pro Zeichen"},
	"prices.per_second":         {"Per second", "Pro Sekunde"},
	"prices.per_image":          {"Per image", "Pro Bild"},
	"prices.per_request":        {"Per request", "Pro Anfrage"},
	"prices.updated_at":         {"Changed", "Geändert"},
	"prices.none":               {"No model has a price yet: requests to models are refused until one has.", "Noch kein Modell hat einen Preis: Anfragen an Modelle werden abgelehnt, bis eines einen hat."},
	"prices.set":                {"Set a price", "Preis festlegen"},
	"prices.hint":               {"Empty rates are 0. Setting a model's price replaces all its rates.", "Leere Sätze sind 0. Ein neuer Preis ersetzt alle Sätze des Modells."},
	"prices.saved":              {"The price of %s is saved.", "Der Preis von %s ist gespeichert."},
	"prices.deleted":            {"The price of %s is deleted.", "Der Preis von %s ist gelöscht."},
}

// addCatalog adds a section of the catalogue; a key in two sections is a
// programming error.
func addCatalog(section map[string]message) {
	for k, m := range section {
		if _, dup := catalog[k]; dup {
			panic("console: catalogue key " + k + " is defined twice")
		}
		catalog[k] = m
	}
}

package console

var catalogClaim = map[string]message{
	"page.claim":       {"Your Tollgate API key", "Ihr Tollgate-API-Schlüssel"},
	"claim.intro":      {"You have been invited to collect your API key. It is made when you press the button and shown only once, so have a safe place ready to keep it (a password manager).", "Sie wurden eingeladen, Ihren API-Schlüssel abzuholen. Er wird beim Klick auf die Schaltfläche erzeugt und nur einmal angezeigt. Halten Sie einen sicheren Ort bereit, um ihn aufzubewahren (einen Passwort-Manager)."},
	"claim.replaces":   {"A key you had before stops working.", "Ein bisheriger Schlüssel funktioniert danach nicht mehr."},
	"claim.show_key":   {"Show my key", "Meinen Schlüssel anzeigen"},
	"claim.key_for":    {"The API key of %s:", "Der API-Schlüssel von %s:"},
	"claim.once":       {"This is the only time the key is shown, and this link no longer works. Copy the key now.", "Der Schlüssel wird nur dieses eine Mal angezeigt, und dieser Link funktioniert nicht mehr. Kopieren Sie den Schlüssel jetzt."},
	"claim.how":        {"How to use it", "So verwenden Sie ihn"},
	"claim.how_tool":   {"Enter the key as the API key in your AI tool or app.", "Tragen Sie den Schlüssel in Ihrem KI-Werkzeug oder Ihrer App als API-Schlüssel ein."},
	"claim.how_base":   {"Set its server address (base URL) to", "Stellen Sie als Serveradresse (Base URL) ein:"},
	"claim.how_secret": {"Keep the key to yourself: whoever has it spends your credits. Never send it by e-mail.", "Behalten Sie den Schlüssel für sich: Wer ihn hat, verbraucht Ihre Credits. Senden Sie ihn nie per E-Mail."},
	"claim.gone":       {"This link is no longer valid: it has been used, withdrawn or has expired. Ask your administrator for a new one.", "Dieser Link ist nicht mehr gültig: Er wurde bereits verwendet, zurückgezogen oder ist abgelaufen. Bitten Sie Ihre Administration um einen neuen."},
}

func init() { addCatalog(catalogClaim) }

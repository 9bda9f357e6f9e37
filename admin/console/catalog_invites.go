package console

var catalogInvites = map[string]message{
	"invite.title":    {"Invite link", "Einladungslink"},
	"invite.intro":    {"Instead of handing over a key, send the user a one-time link: opening it makes a fresh key and shows it to them once (a key they had stops working). The link holds no key and works once.", "Statt einen Schlüssel weiterzugeben, senden Sie einen Einmal-Link: Beim Öffnen wird ein neuer Schlüssel erzeugt und einmal angezeigt (ein bisheriger Schlüssel funktioniert dann nicht mehr). Der Link enthält keinen Schlüssel und funktioniert nur einmal."},
	"invite.created":  {"The invite link, valid until %s:", "Der Einladungslink, gültig bis %s:"},
	"invite.once":     {"Copy it now: it is shown only here. Anyone who opens it gets the user's key, so send it to the user alone.", "Kopieren Sie ihn jetzt: Er wird nur hier angezeigt. Wer ihn öffnet, erhält den Schlüssel des Benutzers; senden Sie ihn daher nur an diese Person."},
	"invite.made":     {"Made", "Erstellt"},
	"invite.by":       {"By", "Von"},
	"invite.expires":  {"Valid until", "Gültig bis"},
	"invite.revoke":   {"Withdraw", "Zurückziehen"},
	"invite.revoked":  {"The invite link is withdrawn.", "Der Einladungslink ist zurückgezogen."},
	"invite.none":     {"No invite link is pending.", "Kein Einladungslink ist offen."},
	"invite.days":     {"Valid for (days)", "Gültig für (Tage)"},
	"invite.create":   {"Make an invite link", "Einladungslink erstellen"},
	"invite.bad_days": {"Valid for must be a whole number of days, such as 7.", "Die Gültigkeit muss eine ganze Zahl von Tagen sein, etwa 7."},
}

func init() { addCatalog(catalogInvites) }

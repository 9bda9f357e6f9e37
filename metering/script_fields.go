package metering

// The names the Lua scripts and the Go side must agree on, in one place:
// the scripts' status codes, the hash fields Go reads or writes, and the
// event fields of the stream. docs/architecture.md has the tables (keys,
// scripts, event fields with their meaning and sign); a name changed here
// must change in the scripts too.

// Script answers' status codes (an answer's first element), shared by the
// money scripts. Each script's parser accepts only the ones it can give.
const (
	scriptOK           = 0
	scriptInsufficient = 1 // nothing taken; the answer carries what there is
	scriptTooLarge     = 2 // an adjustment would pass the maximum balance
	scriptNoUser       = -1
	scriptStale        = -2 // the caller's cached key hash or versions
	scriptRefused      = -3 // inactive user or expired key
	scriptNoProject    = -4
	scriptStalePrice   = -5 // the price version changed since the estimate
	scriptCancelled    = -6 // the operation's record exists (a cancel's marker)
	scriptDeleted      = -7 // the user hash is a tombstone
	scriptTooMuchUsed  = -8 // lease_end.lua: more use than the lease holds
)

// User hash fields ({p}:u:<id>): configuration mirrored from Postgres with
// its version, then the balances Redis owns once loaded.
const (
	userKeyHash        = "kh"
	userVersion        = "v"
	userStatus         = "st" // "1" active
	userKeyExpiry      = "exp"
	userProject        = "p"
	userName           = "n"
	userMonthlyGrant   = "mg"
	userPartner        = "pt"
	userAllowance      = "a"
	userAllowanceStart = "ap"
	userPoolUsed       = "pu"
	userAwarded        = "aw"
	userPurchased      = "pr"
	userGrantMonth     = "gm"
	userParked         = "x"
	userDeleted        = "del"
	// A tombstone a move to another shard left (move_out.lua): the move's
	// id, the version before it; the copy the new shard made holds the id
	// in userMovedIn (move_in.lua).
	userMovedOut  = "mo"
	userMovedFrom = "mv"
	userMovedIn   = "mi"
)

// Project hash fields ({p}:p:<id>).
const (
	projectVersion     = "v"
	projectName        = "n"
	projectAmount      = "amt"
	projectPeriod      = "per"
	projectTimeZone    = "tz"
	projectPoolEnabled = "pe"
	projectPoolLimit   = "pl"
	projectPool        = "pb"
)

// Reservation hash fields ({p}:r:<id>), written by reserve.lua and
// heal.go's restore, read by settle.lua and the sweeper. The amounts
// taken per bucket are positive here (the hold event's are negative).
const (
	reservationUser           = "u"
	reservationProject        = "p"
	reservationUserName       = "un"
	reservationProjectName    = "pn"
	reservationAllowanceStart = "ap"
	reservationAllowanceEnd   = "ae"
	reservationOrder          = "o"
	reservationReserved       = "rs"
	reservationAllowance      = "a"
	reservationPool           = "pl"
	reservationAwarded        = "w"
	reservationPurchased      = "r"
	reservationModel          = "m"
	reservationRequest        = "rq"
)

// Event fields of the stream ({p}:events). Amounts are signed deltas of
// the balance named (negative: taken); an absent amount is 0 and an
// absent text none.
const (
	eventID          = "id"
	eventKind        = "k"
	eventTime        = "t" // Unix ms
	eventUser        = "u"
	eventUserName    = "un"
	eventProject     = "p"
	eventProjectName = "pn"
	eventCost        = "c"
	eventAllowance   = "a"
	eventPool        = "pl" // the project's pool balance
	eventPoolUsed    = "pu" // the user's pool use this period
	eventAwarded     = "aw"
	eventPurchased   = "pr"
	eventPeriod      = "ap" // refills: the new allowance period start, Unix s
	eventGrantMonth  = "gm" // grants: the month paid, year*12+month-1
	eventRequest     = "rq"
	eventActor       = "ac"
	eventNote        = "no"
	eventModel       = "m"
	eventInputUnits  = "iu"
	eventOutputUnits = "ou"
	eventReserved    = "rs"
	eventUpstream    = "st" // upstream HTTP status; absent: none
	eventDurationMs  = "ms"
	eventShortfall   = "sf"
	eventForfeited   = "ff"
	eventServedModel = "rm"
	// A packed entry's (event_pack.go): how many events it holds, and
	// the events' own fields (id, time, cost, request), length-prefixed.
	eventPackedCount = "n"
	eventPacked      = "ev"
)

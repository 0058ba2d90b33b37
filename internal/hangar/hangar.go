package hangar

import (
	"regexp"
	"time"
)

// AppStatus is the lifecycle state of an app, as the API reports it in
// Application.Status. Hangar decides (SPEC §3): an app leaves AVAILABLE before
// a deploy request is answered and reads AVAILABLE only when the new version
// serves.
type AppStatus string

// App statuses.
const (
	StatusRegistered  AppStatus = "REGISTERED"
	StatusDeploying   AppStatus = "DEPLOYING"
	StatusAvailable   AppStatus = "AVAILABLE"
	StatusUnavailable AppStatus = "UNAVAILABLE"
	StatusFailed      AppStatus = "FAILED"
	StatusDeleting    AppStatus = "DELETING"
)

// Language is an app's runtime language.
type Language string

// Languages.
const (
	LanguageNode   Language = "node"
	LanguagePython Language = "python"
	LanguageGo     Language = "go"
)

// Port returns the HTTP port apps of this language serve on (SPEC §6).
func (l Language) Port() int {
	switch l {
	case LanguagePython:
		return 8000
	case LanguageGo:
		return 8080
	default:
		return 3000
	}
}

// ParseLanguage validates a language name; "" means node.
func ParseLanguage(s string) (Language, error) {
	switch Language(s) {
	case "":
		return LanguageNode, nil
	case LanguageNode, LanguagePython, LanguageGo:
		return Language(s), nil
	}
	return "", Errorf(KindInvalid, "unsupported language %q: use node, python or go", s)
}

// User is a person with an account; Org is the organization they act in.
type User struct {
	ID        string
	Name      string
	Email     string
	Org       string
	CreatedAt time.Time
}

// App is a registered application of an organization.
type App struct {
	ID    string
	OrgID string // the org's stable ID; Org is its name, which a rename changes
	Org   string
	Name  string
	// InstanceID is the ID of the database instance the app's databases
	// live on; DBInstance is its name, for display.
	InstanceID string
	DBInstance string
	AppDBName  string // the app database; the system database is AppDBName + "_dbos_sys"
	Language   Language
	Status     AppStatus
	Version    string // ID of the version that serves (or last deployed)
	MemoryMiB  int
	MinVMs     int
	MaxVMs     int
	// DBRole and DBPassword are the app's own login role on its instance.
	DBRole     string
	DBPassword string
	CreatedAt  time.Time
}

// SysDBName returns the name of the app's DBOS system database.
func (a *App) SysDBName() string { return a.AppDBName + "_dbos_sys" }

// Hostname returns the app's host under domain: <org>-<app>.<domain>.
func (a *App) Hostname(domain string) string { return a.Org + "-" + a.Name + "." + domain }

// Memory limits for executors, in MiB.
const (
	DefaultMemoryMiB = 512
	MinMemoryMiB     = 512
	MaxMemoryMiB     = 5120
)

// VersionStatus is the outcome of a version's deploy.
type VersionStatus string

// Version statuses.
const (
	VersionDeploying VersionStatus = "DEPLOYING"
	VersionActive    VersionStatus = "ACTIVE"
	VersionFailed    VersionStatus = "FAILED"
	VersionRetired   VersionStatus = "RETIRED"
)

// Version is one deploy of an app.
type Version struct {
	ID            string
	AppID         string
	ArchiveDigest string // sha256 hex of the uploaded zip
	Status        VersionStatus
	Error         string
	DeployedBy    string
	CreatedAt     time.Time
	FinishedAt    time.Time
	// AppVersion is the DBOS__APPVERSION its executors run with: its own ID,
	// or for a redeploy of an earlier version, that version's AppVersion, so
	// that workflows of that code stay recoverable.
	AppVersion string
	// RestoredFrom names the version a --previous-version deploy restores.
	RestoredFrom string
	// Config is the dbos-config.yaml it ran with, as JSON.
	Config []byte
	// SchemaFingerprint identifies the app database's schema (schema dbos
	// excluded) after its migrations ran.
	SchemaFingerprint string
	// Steps are the pipeline steps' timings and outcomes, in order.
	Steps []StepRecord
}

// StepRecord is the timing and outcome of one pipeline step of a version.
type StepRecord struct {
	Name       string    `json:"name"`
	StartedAt  time.Time `json:"started_at"`
	DurationMS int64     `json:"duration_ms"`
	Error      string    `json:"error,omitempty"`
}

// DBStatus is a database instance's state, as the official CLI polls it.
type DBStatus string

// Database instance statuses.
const (
	DBProvisioning DBStatus = "provisioning"
	DBAvailable    DBStatus = "available"
	DBFailed       DBStatus = "failed"
	// DBRestoring is an instance being created by a point-in-time restore.
	DBRestoring DBStatus = "restoring"
	// DBUnavailable is a managed instance whose server is down and that the
	// supervisor is restarting.
	DBUnavailable DBStatus = "unavailable"
	DBDeleting    DBStatus = "deleting"
)

// DBInstance is a PostgreSQL server that apps' databases live on.
type DBInstance struct {
	ID            string
	Org           string
	Name          string
	Status        DBStatus
	Host          string
	Port          int
	AdminUser     string
	AdminPassword string
	IsLinked      bool
	CreatedAt     time.Time
}

var (
	appNameRE  = regexp.MustCompile(`^[a-z0-9_-]{3,30}$`)
	userNameRE = regexp.MustCompile(`^[a-z0-9_]{3,30}$`)
	dbNameRE   = regexp.MustCompile(`^[a-z][a-z0-9_-]{2,29}$`)
	pgIdentRE  = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
)

// ValidateAppName checks an application name (3–30 of [a-z0-9-_]).
func ValidateAppName(name string) error {
	if !appNameRE.MatchString(name) {
		return Errorf(KindInvalid, "invalid application name %q: use 3 to 30 characters of a-z, 0-9, - and _", name)
	}
	return nil
}

// ValidateUserName checks a user or organization name (3–30 of [a-z0-9_]).
func ValidateUserName(name string) error {
	if !userNameRE.MatchString(name) {
		return Errorf(KindInvalid, "invalid name %q: use 3 to 30 characters of a-z, 0-9 and _", name)
	}
	return nil
}

// ValidateDBInstanceName checks a database instance name.
func ValidateDBInstanceName(name string) error {
	if !dbNameRE.MatchString(name) {
		return Errorf(KindInvalid, "invalid database instance name %q: use 3 to 30 characters of a-z, 0-9, - and _, starting with a letter", name)
	}
	return nil
}

// ValidatePGIdent checks a name used as a PostgreSQL database or role name.
func ValidatePGIdent(what, name string) error {
	if !pgIdentRE.MatchString(name) {
		return Errorf(KindInvalid, "invalid %s %q: use a-z, 0-9 and _, starting with a letter or _", what, name)
	}
	return nil
}

// ValidateMemory checks an executor memory size in MiB.
func ValidateMemory(mib int) error {
	if mib < MinMemoryMiB || mib > MaxMemoryMiB {
		return Errorf(KindInvalid, "invalid executors memory %d MiB: allowed range is %d to %d", mib, MinMemoryMiB, MaxMemoryMiB)
	}
	return nil
}

// DefaultAppDBName derives an app database name from an app name.
func DefaultAppDBName(appName string) string {
	b := []byte(appName)
	for i, c := range b {
		if c == '-' {
			b[i] = '_'
		}
	}
	s := string(b)
	if s[0] >= '0' && s[0] <= '9' {
		s = "_" + s
	}
	return s
}

func notFound(what, name string) error { return Errorf(KindNotFound, "%s %s not found", what, name) }

// AppNotFound is the error for a missing app; its message is matched by the
// official CLI ("application <a> not found").
func AppNotFound(name string) error { return notFound("application", name) }

// DBNotFound is the error for a missing database instance; its message is
// matched by the official CLI ("database <db> not found").
func DBNotFound(name string) error { return notFound("database", name) }

// UserNotFound is the error for an authenticated identity without a user
// record; the official CLI matches "user not found in DBOS Cloud".
func UserNotFound() error { return Errorf(KindNotFound, "user not found in DBOS Cloud") }

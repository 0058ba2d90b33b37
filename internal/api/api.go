// Package api serves Hangar's HTTP API: the DBOS Cloud API the official CLI
// speaks (shared/API.md), plus the token endpoint. Handlers decode, make one
// service call and encode; one adapter turns errors into the CLI's error
// body. It is a transport: it may import the orchestration and leaf packages
// and apiclient (the wire types), and each handler group declares the small
// interface it calls (Logins, Passwords, Accounts, Workflows, …). Only the
// composition roots import it.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hangar-oss/hangar/internal/apiclient"
	"github.com/hangar-oss/hangar/internal/archive"
	"github.com/hangar-oss/hangar/internal/auth"
	"github.com/hangar-oss/hangar/internal/databases"
	"github.com/hangar-oss/hangar/internal/deploy"
	"github.com/hangar-oss/hangar/internal/fleet"
	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/logs"
)

// Config configures the API.
type Config struct {
	// Domain is the public domain (host[:port]) apps are served under.
	Domain string
	// MaxBodyBytes bounds request bodies on every route but the deploy
	// uploads, which the archive store's limits bound. Default 1 MiB.
	MaxBodyBytes int64
	// Middleware, when set, wraps the routes (inside the request ID
	// handler), so that r.Pattern holds the matched route when the handler
	// it wraps returns: the composition root instruments the API with it.
	// Default none.
	Middleware func(http.Handler) http.Handler
	// Now is the API's clock. Default time.Now.
	Now func() time.Time
	// History, when set, serves apps' metrics history (GET
	// …/applications/{app}/metrics). Default none: that route answers 503.
	History HistoryReader
}

// Executors is what the API reads of apps' executors and runs on them;
// *fleet.Fleet satisfies it.
type Executors interface {
	// Executors returns the app's live executors with their resource use.
	Executors(ctx context.Context, appID string) []fleet.ExecutorStatus
	// Health says how the app's executors fare.
	Health(appID string) fleet.Health
	// Events returns the app's recent executor events.
	Events(appID string) []fleet.Event
	// ExecutorCommand runs a command on one of an app's executors.
	// KindNotFound, KindConflict.
	ExecutorCommand(ctx context.Context, c fleet.Command) (fleet.CommandResult, error)
}

// Databases runs the database instance operations; *databases.Service
// satisfies it. Each returns KindNotFound, KindInvalid, KindConflict or
// KindUnavailable with a message for the user.
type Databases interface {
	ProvisionDB(ctx context.Context, org string, req databases.ProvisionRequest) (hangar.DBInstance, error)
	RestoreDB(ctx context.Context, org, name string, req databases.RestoreRequest) (hangar.DBInstance, error)
	LinkDB(ctx context.Context, org string, req databases.LinkRequest) (hangar.DBInstance, error)
	UnlinkDB(ctx context.Context, org, name string) error
	DestroyDB(ctx context.Context, org, name string) error
	ResetDBPassword(ctx context.Context, org, name, password string) error
	// DBInstance returns org's instance named name. KindNotFound.
	DBInstance(ctx context.Context, org, name string) (hangar.DBInstance, error)
	// DBInstances lists org's instances.
	DBInstances(ctx context.Context, org string) ([]hangar.DBInstance, error)
}

// Deps are the services the API's handlers call. Each handler group
// depends on an interface it declares, holding only what it calls.
type Deps struct {
	// Apps registers, deploys, updates and deletes apps (apps.go).
	Apps Apps
	// Reads reads apps and their versions.
	Reads Reads
	// Archives receives deploy archives (apps.go, upload_raw.go).
	Archives Archives
	// Logs serves apps' logs.
	Logs *logs.Store
	// Tokens signs and verifies access tokens.
	Tokens Tokens
	// Users looks up the user of an access token.
	Users Users
	// Accounts serves users, organizations and secrets (accounts.go).
	Accounts Accounts
	// Logins serves the device login and the refresh-token exchange
	// (device.go, users.go).
	Logins Logins
	// Passwords serves password sign-ins (password.go, console.go).
	Passwords Passwords
	// Workflows serves apps' workflows (workflows.go).
	Workflows Workflows
	// Executors serves apps' executors, their events and commands.
	Executors Executors
	// Databases serves database instances.
	Databases Databases
}

// Apps runs the app pipeline; *deploy.Service satisfies it. Each returns
// KindNotFound, KindInvalid or KindConflict with a message for the user.
type Apps interface {
	RegisterApp(ctx context.Context, org string, req deploy.RegisterRequest) (hangar.App, error)
	// Deploy returns the new version once it serves.
	Deploy(ctx context.Context, org, appName string, req deploy.DeployRequest) (hangar.Version, error)
	UpdateApp(ctx context.Context, org, name string, req deploy.UpdateRequest) (hangar.App, error)
	DeleteApp(ctx context.Context, org, name string, dropDB bool) error
}

// Reads reads apps and versions; *store.DB satisfies it.
type Reads interface {
	// App returns org's app named name. KindNotFound.
	App(ctx context.Context, org, name string) (hangar.App, error)
	// Apps lists org's apps.
	Apps(ctx context.Context, org string) ([]hangar.App, error)
	// Versions lists the app's versions, newest first.
	Versions(ctx context.Context, appID string) ([]hangar.Version, error)
}

// Archives receives deploy archives into the content-addressed store;
// *archive.Store satisfies it. A received archive is held until released,
// so that it outlives the deploy that records its version.
type Archives interface {
	// Limits returns the bounds of an archive.
	Limits() archive.Limits
	// Receive stores the archive read from r, of declared size (-1:
	// unknown), and returns its digest, held. KindTooLarge, KindInvalid.
	Receive(ctx context.Context, r io.Reader, size int64) (string, error)
	// Create starts receiving an archive written piecewise.
	Create() (*archive.Writer, error)
	// Release drops a hold; an archive no version keeps is deleted.
	Release(ctx context.Context, digest string)
}

// Tokens signs and verifies access tokens; *auth.Issuer satisfies it.
type Tokens interface {
	// Issue returns an access token for u and its expiry.
	Issue(u hangar.User) (string, time.Time, error)
	// Verify returns the subject (an account ID) of a valid access token.
	// KindUnauthorized.
	Verify(token string) (string, error)
}

// Users looks up users; *store.DB satisfies it.
type Users interface {
	// UserByID returns a registered user. KindNotFound, KindUnauthorized
	// for a disabled one.
	UserByID(ctx context.Context, id string) (hangar.User, error)
}

// Server holds the API's dependencies.
type Server struct {
	cfg       Config
	svc       Apps
	reads     Reads
	archives  Archives
	tokens    Tokens
	users     Users
	accts     Accounts
	logins    Logins
	passwords Passwords
	workflows Workflows
	exs       Executors
	dbs       Databases
	logs      *logs.Store
	log       *slog.Logger
	now       func() time.Time
}

// NewHandler returns the API handler.
func NewHandler(cfg Config, deps Deps, log *slog.Logger) http.Handler {
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	s := &Server{cfg: cfg, svc: deps.Apps, reads: deps.Reads, archives: deps.Archives, tokens: deps.Tokens, users: deps.Users, accts: deps.Accounts,
		logins: deps.Logins, passwords: deps.Passwords, workflows: deps.Workflows, exs: deps.Executors, dbs: deps.Databases, logs: deps.Logs,
		log: log.With("component", "api"), now: cfg.Now}
	if s.now == nil {
		s.now = time.Now
	}
	var h http.Handler = s.routes()
	if cfg.Middleware != nil {
		h = cfg.Middleware(h)
	}
	return s.withRequestID(h)
}

// handlerFunc is a handler that returns an error for the adapter to write.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle adapts a handlerFunc: errors become the CLI's error body.
func (s *Server) handle(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// authed wraps h so that it runs only with a verified principal.
func (s *Server) authed(h handlerFunc) http.Handler {
	return s.handle(func(w http.ResponseWriter, r *http.Request) error {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || tok == "" {
			return hangar.Errorf(hangar.KindUnauthorized, "missing bearer token: log in first")
		}
		uid, err := s.tokens.Verify(strings.TrimSpace(tok))
		if err != nil {
			return err
		}
		u, err := s.users.UserByID(r.Context(), uid)
		if err != nil {
			return err
		}
		return h(w, r.WithContext(auth.WithPrincipal(r.Context(), auth.Principal{User: u})))
	})
}

// principal returns the request's principal; authed guarantees one.
func principal(r *http.Request) auth.Principal {
	p, _ := auth.PrincipalFrom(r.Context())
	return p
}

// orgOf returns the {org} path value after checking the caller acts in it.
func orgOf(r *http.Request) (string, error) {
	org := r.PathValue("org")
	return org, principal(r).CheckOrg(org)
}

// appOf returns the app {app} of the organization {org}, after checking
// the caller acts in it.
func (s *Server) appOf(r *http.Request) (hangar.App, error) {
	org, err := orgOf(r)
	if err != nil {
		return hangar.App{}, err
	}
	return s.reads.App(r.Context(), org, r.PathValue("app"))
}

// statusOf maps an error kind to its HTTP status: the one place that does.
func statusOf(k hangar.Kind) int {
	switch k {
	case hangar.KindNotFound:
		return http.StatusNotFound
	case hangar.KindInvalid:
		return http.StatusBadRequest
	case hangar.KindConflict:
		return http.StatusConflict
	case hangar.KindUnauthorized:
		return http.StatusUnauthorized
	case hangar.KindForbidden:
		return http.StatusForbidden
	case hangar.KindUnavailable:
		return http.StatusServiceUnavailable
	case hangar.KindTooLarge:
		return http.StatusRequestEntityTooLarge
	case hangar.KindTooMany:
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	kind := hangar.KindOf(err)
	body := apiclient.Error{StatusCode: statusOf(kind), RequestID: requestID(r.Context())}
	var he *hangar.Error
	if errors.As(err, &he) {
		body.Message, body.DetailedError = he.Message, he.Detail
	} else {
		body.Message = "internal server error (request " + body.RequestID + ")"
	}
	if kind == hangar.KindInternal {
		s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "request_id", body.RequestID, "err", err)
	}
	writeJSON(w, body.StatusCode, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// decode reads a small JSON request body into v; the route registry caps
// the body at Config.MaxBodyBytes.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
			return hangar.Errorf(hangar.KindTooLarge, "request body larger than %d bytes", tooLarge.Limit)
		}
		return hangar.Errorf(hangar.KindInvalid, "invalid request body: %v", err)
	}
	return nil
}

type requestIDKey struct{}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

func (s *Server) withRequestID(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := make([]byte, 8)
		rand.Read(b) //nolint:errcheck
		id := hex.EncodeToString(b)
		w.Header().Set("X-Request-Id", id)
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
	})
}

// appURL is the public URL of an app.
func (s *Server) appURL(a hangar.App) string { return "https://" + a.Hostname(s.cfg.Domain) + "/" }

// HostSwitch serves the API on the domain's host and everything else (app
// hostnames under the domain) with apps.
func HostSwitch(domain string, api, apps http.Handler) http.Handler {
	apiHost := hostOnly(domain)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(hostOnly(r.Host), apiHost) {
			api.ServeHTTP(w, r)
			return
		}
		apps.ServeHTTP(w, r)
	})
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

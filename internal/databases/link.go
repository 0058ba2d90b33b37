package databases

import (
	"context"
	"net"
	"net/url"
	"regexp"
	"strconv"

	"github.com/google/uuid"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// LinkRequest asks to link a PostgreSQL server of the user's own.
type LinkRequest struct {
	Name     string
	HostName string
	Port     int
	Password string
	// AdminName is the role Hangar uses on the server. Default "dbosadmin"
	// ("postgres" for a Supabase database).
	AdminName string
	// SupabaseRef is the Supabase project reference when the server is a
	// Supabase database.
	SupabaseRef *string
}

// LinkDB records a server of the user's own as org's instance req.Name,
// after checking that its admin role logs in and may create databases and
// roles. Apps registered on it get their databases there.
func (s *Service) LinkDB(ctx context.Context, org string, req LinkRequest) (hangar.DBInstance, error) {
	if err := hangar.ValidateDBInstanceName(req.Name); err != nil {
		return hangar.DBInstance{}, err
	}
	if err := validateHostName(req.HostName); err != nil {
		return hangar.DBInstance{}, err
	}
	if req.Port < 1 || req.Port > 65535 {
		return hangar.DBInstance{}, hangar.Errorf(hangar.KindInvalid, "invalid port %d: use 1 to 65535", req.Port)
	}
	if err := validatePassword(req.Password); err != nil {
		return hangar.DBInstance{}, err
	}
	admin := req.AdminName
	if admin == "" {
		admin = "dbosadmin"
		if req.SupabaseRef != nil {
			admin = "postgres"
		}
	}
	if err := hangar.ValidatePGIdent("database admin name", admin); err != nil {
		return hangar.DBInstance{}, err
	}
	dbm := s.instances
	if _, err := s.store.DBInstance(ctx, org, req.Name); err == nil {
		return hangar.DBInstance{}, hangar.Errorf(hangar.KindConflict, "database instance %s already exists", req.Name)
	} else if hangar.KindOf(err) != hangar.KindNotFound {
		return hangar.DBInstance{}, err
	}
	if err := s.refuseOwnServer(ctx, req.HostName, req.Port); err != nil {
		return hangar.DBInstance{}, err
	}
	inst := hangar.DBInstance{
		ID: uuid.NewString(), Org: org, Name: req.Name, Status: hangar.DBAvailable,
		Host: req.HostName, Port: req.Port, AdminUser: admin, AdminPassword: req.Password, IsLinked: true,
	}
	if err := dbm.CheckLink(ctx, inst); err != nil {
		return hangar.DBInstance{}, err
	}
	if err := s.store.CreateDBInstance(ctx, inst, s.cfg.OrgLimits); err != nil {
		return hangar.DBInstance{}, err
	}
	return inst, nil
}

// refuseOwnServer refuses to link a server Hangar runs itself (a managed
// instance, of any org, or the metadata database): one reaches those only
// through Hangar.
func (s *Service) refuseOwnServer(ctx context.Context, host string, port int) error {
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return hangar.Errorf(hangar.KindInvalid, "cannot resolve database host name %s", host)
	}
	local := false
	for _, a := range addrs {
		local = local || a.IP.IsLoopback() || a.IP.IsUnspecified()
	}
	if !local {
		return nil
	}
	own := map[int]bool{}
	if u, err := url.Parse(s.cfg.SystemDatabaseURL); err == nil {
		if p, err := strconv.Atoi(u.Port()); err == nil {
			own[p] = true
		}
	}
	insts, err := s.store.DBInstances(ctx, "")
	if err != nil {
		return err
	}
	for _, in := range insts {
		if !in.IsLinked {
			own[in.Port] = true
		}
	}
	if own[port] {
		return hangar.Errorf(hangar.KindInvalid, "%s is a server Hangar runs itself: link a PostgreSQL server of your own", net.JoinHostPort(host, strconv.Itoa(port)))
	}
	return nil
}

// UnlinkDB removes org's linked instance named name; Hangar leaves the
// server and the apps' databases on it alone. It refuses while applications
// are registered on it, naming them.
func (s *Service) UnlinkDB(ctx context.Context, org, name string) error {
	st := s.store
	inst, err := s.store.DBInstance(ctx, org, name)
	if err != nil {
		return err
	}
	if !inst.IsLinked {
		return hangar.Errorf(hangar.KindInvalid, "database %s is not a linked server: destroy it with `dbos-cloud db destroy %s`", name, name)
	}
	return st.DeleteDBInstance(ctx, inst.ID)
}

var hostNameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$`)

// validateHostName checks the host name of a linked server: a DNS name or
// an IP address.
func validateHostName(host string) error {
	if net.ParseIP(host) != nil {
		return nil
	}
	if len(host) > 253 || !hostNameRE.MatchString(host) {
		return hangar.Errorf(hangar.KindInvalid, "invalid database host name %q: use a DNS name or an IP address", host)
	}
	return nil
}

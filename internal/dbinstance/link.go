package dbinstance

import (
	"context"
	"errors"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// linkTimeout bounds CheckLink's connection attempt.
const linkTimeout = 15 * time.Second

// CheckLink checks that Hangar can use the linked server inst (inst.Host,
// inst.Port): its admin role inst.AdminUser logs in with inst.AdminPassword
// and may create databases and roles (each app gets its own of both), as a
// superuser or with CREATEDB and CREATEROLE. It returns hangar.KindInvalid,
// with what failed, otherwise.
func (m *Manager) CheckLink(ctx context.Context, inst hangar.DBInstance) error {
	inst.IsLinked = true
	addr := net.JoinHostPort(inst.Host, strconv.Itoa(inst.Port))
	cfg, err := pgx.ParseConfig(AdminURL(inst, "postgres"))
	if err != nil {
		return hangar.Errorf(hangar.KindInvalid, "invalid database address %s", addr)
	}
	cfg.ConnectTimeout = linkTimeout
	ctx, cancel := context.WithTimeout(ctx, linkTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			// The server answered: its message (bad password, no such
			// role, pg_hba refusal) is what the user needs to fix it.
			return hangar.Errorf(hangar.KindInvalid, "cannot log in to %s as %s: %s", addr, inst.AdminUser, pgErr.Message)
		}
		return hangar.Errorf(hangar.KindInvalid, "cannot reach a PostgreSQL server at %s from Hangar: check the host name, the port and the server's firewall", addr)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var super, createDB, createRole bool
	err = conn.QueryRow(ctx, "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user").
		Scan(&super, &createDB, &createRole)
	if err != nil {
		return hangar.Errorf(hangar.KindInvalid, "cannot read the attributes of role %s on %s", inst.AdminUser, addr)
	}
	if !super && !(createDB && createRole) {
		return hangar.Errorf(hangar.KindInvalid,
			"role %s on %s cannot create databases and roles: Hangar creates a database and a login role for each app; run ALTER ROLE %s CREATEDB CREATEROLE",
			inst.AdminUser, addr, sqlName(inst.AdminUser))
	}
	return nil
}

// sqlName quotes a role name for an SQL statement shown to users, only when
// it needs quotes.
func sqlName(name string) string {
	if hangar.ValidatePGIdent("", name) == nil {
		return name
	}
	return pgx.Identifier{name}.Sanitize()
}

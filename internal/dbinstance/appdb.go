package dbinstance

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/pgcluster"
	"github.com/jackc/pgx/v5"
)

// sysDBSuffix names an app's DBOS system database: <app_db>_dbos_sys.
const sysDBSuffix = "_dbos_sys"

// EnsureAppDatabases creates, or brings up to date, an app's login role and
// its two databases, appDB and appDB+"_dbos_sys", owned by that role. It
// sets the role's password (also when the role exists) and gives it no
// superuser, createdb or createrole rights. Only the role (and superusers)
// may connect to the two databases, and the role can connect nowhere else.
// On a linked server whose admin is not a superuser (but has CREATEDB and
// CREATEROLE), the admin is made a member of the app's role, which CREATE
// DATABASE … OWNER needs. It returns hangar.KindInvalid for bad names and
// hangar.KindConflict when a database of that name belongs to another role.
func (m *Manager) EnsureAppDatabases(ctx context.Context, inst hangar.DBInstance, appDB, role, password string) error {
	if err := validateAppNames(inst, appDB, role); err != nil {
		return err
	}
	if password == "" {
		return hangar.Errorf(hangar.KindInvalid, "database role %s needs a password", role)
	}
	if strings.ContainsRune(password, 0) {
		return hangar.Errorf(hangar.KindInvalid, "password must not contain NUL characters")
	}
	pw := pgcluster.PasswordLiteral(password)
	roleIdent := pgx.Identifier{role}.Sanitize()
	err := withConn(ctx, AdminURL(inst, "postgres"), func(conn *pgx.Conn) error {
		var exists, super bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1),
			(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)`, role).Scan(&exists, &super); err != nil {
			return err
		}
		verb := "CREATE"
		if exists {
			verb = "ALTER"
		}
		// ALTER resets attributes too, should anyone have granted more. Only
		// a superuser may name the superuser, replication and bypassrls
		// attributes, which a role a non-superuser created never has.
		attrs := " WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD "
		if !super {
			attrs = " WITH LOGIN NOCREATEDB NOCREATEROLE PASSWORD "
		}
		if _, err := conn.Exec(ctx, verb+" ROLE "+roleIdent+attrs+pw); err != nil {
			return err
		}
		if !super {
			if _, err := conn.Exec(ctx, "GRANT "+roleIdent+" TO CURRENT_USER"); err != nil {
				return err
			}
		}
		for _, db := range []string{appDB, appDB + sysDBSuffix} {
			owner, err := dbOwner(ctx, conn, db)
			if err != nil {
				return err
			}
			dbIdent := pgx.Identifier{db}.Sanitize()
			switch owner {
			case "":
				if _, err := conn.Exec(ctx, "CREATE DATABASE "+dbIdent+" OWNER "+roleIdent); err != nil {
					return err
				}
			case role:
			default:
				return hangar.Errorf(hangar.KindConflict, "database %s already exists and belongs to another role", db)
			}
			if _, err := conn.Exec(ctx, "REVOKE ALL ON DATABASE "+dbIdent+" FROM PUBLIC"); err != nil {
				return err
			}
		}
		// The DBOS Go SDK connects to the postgres database to check that
		// its system database exists before it connects to it; postgres
		// holds nothing of any app, and catalogs it shows (database and
		// role names) are visible from every database anyway.
		if _, err := conn.Exec(ctx, "GRANT CONNECT ON DATABASE postgres TO "+roleIdent); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ensure app databases %s on %s: %w", appDB, inst.ID, err)
	}
	return nil
}

// DropAppDatabases drops an app's two databases, disconnecting their
// clients, and then its role. Missing ones are skipped. It returns
// hangar.KindInvalid for bad names and hangar.KindConflict when a database
// of that name belongs to another role.
func (m *Manager) DropAppDatabases(ctx context.Context, inst hangar.DBInstance, appDB, role string) error {
	if err := validateAppNames(inst, appDB, role); err != nil {
		return err
	}
	m.pools.closeDB(inst.ID, appDB+sysDBSuffix)
	err := withConn(ctx, AdminURL(inst, "postgres"), func(conn *pgx.Conn) error {
		for _, db := range []string{appDB, appDB + sysDBSuffix} {
			owner, err := dbOwner(ctx, conn, db)
			switch {
			case err != nil:
				return err
			case owner == "":
				continue
			case owner != role:
				return hangar.Errorf(hangar.KindConflict, "database %s belongs to another role", db)
			}
			if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)"); err != nil {
				return err
			}
		}
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role).Scan(&exists); err != nil || !exists {
			return err
		}
		if _, err := conn.Exec(ctx, "REVOKE CONNECT ON DATABASE postgres FROM "+pgx.Identifier{role}.Sanitize()); err != nil {
			return err
		}
		_, err := conn.Exec(ctx, "DROP ROLE "+pgx.Identifier{role}.Sanitize())
		return err
	})
	if err != nil {
		return fmt.Errorf("drop app databases %s on %s: %w", appDB, inst.ID, err)
	}
	return nil
}

// dbOwner returns the owner of database db, or "" when there is no such
// database.
func dbOwner(ctx context.Context, conn *pgx.Conn, db string) (string, error) {
	var owner string
	err := conn.QueryRow(ctx, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", db).Scan(&owner)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return owner, err
}

// validateAppNames checks an app's database and role names, refusing the
// instance's own databases and roles.
func validateAppNames(inst hangar.DBInstance, appDB, role string) error {
	if err := hangar.ValidatePGIdent("database name", appDB); err != nil {
		return err
	}
	if err := hangar.ValidatePGIdent("database name", appDB+sysDBSuffix); err != nil {
		return hangar.Errorf(hangar.KindInvalid, "database name %q is too long: at most %d characters", appDB, 63-len(sysDBSuffix))
	}
	if err := hangar.ValidatePGIdent("role name", role); err != nil {
		return err
	}
	switch appDB {
	case "postgres", "template0", "template1":
		return hangar.Errorf(hangar.KindInvalid, "database name %q is reserved", appDB)
	}
	if role == inst.AdminUser || role == "postgres" || role == "public" || strings.HasPrefix(role, "pg_") {
		return hangar.Errorf(hangar.KindInvalid, "role name %q is reserved", role)
	}
	return nil
}

package store

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Sealer encrypts values at rest; secretbox.Box satisfies it. A sealed
// value opens only with the associated data it was sealed with.
type Sealer interface {
	Seal(plaintext, associatedData []byte) []byte
	OpenSealed(sealed, associatedData []byte) ([]byte, error)
}

// Option configures Open.
type Option func(*DB)

// WithSealer makes the store keep database passwords (instances' admin
// passwords, managed and linked, and apps' role passwords) sealed by s, and seal those recorded in
// clear by earlier versions when it opens.
func WithSealer(s Sealer) Option { return func(db *DB) { db.sealer = s } }

// sealedPrefix marks a sealed password in a text column.
const sealedPrefix = "sealed:"

// errNoSealer is returned when a sealed password is read by a store opened
// without WithSealer.
var errNoSealer = errors.New("store: password is sealed, and no key was given to open it")

// sealPassword seals the password of row id of column col; without a
// Sealer it is kept in clear.
func (db *DB) sealPassword(col, id, password string) string {
	if db.sealer == nil {
		return password
	}
	return sealedPrefix + base64.StdEncoding.EncodeToString(db.sealer.Seal([]byte(password), passwordAD(col, id)))
}

// openPassword opens what sealPassword stored.
func (db *DB) openPassword(col, id, stored string) (string, error) {
	b64, ok := strings.CutPrefix(stored, sealedPrefix)
	if !ok {
		return stored, nil // recorded in clear before WithSealer
	}
	if db.sealer == nil {
		return "", errNoSealer
	}
	sealed, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", fmt.Errorf("open %s of %s: %w", col, id, err)
	}
	pw, err := db.sealer.OpenSealed(sealed, passwordAD(col, id))
	if err != nil {
		return "", fmt.Errorf("open %s of %s: %w", col, id, err)
	}
	return string(pw), nil
}

// passwordAD binds a sealed password to its row and column, so that it
// does not open when copied to another.
func passwordAD(col, id string) []byte { return []byte(col + "\x00" + id) }

// sealClearPasswords seals the passwords earlier versions recorded in
// clear (instances' admin passwords, apps' role passwords): the migration
// that needs the key, run by Open after the schema's.
func (db *DB) sealClearPasswords(ctx context.Context) error {
	if db.sealer == nil {
		return nil
	}
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		for _, c := range []struct{ table, column, col string }{
			{"db_instances", "admin_password", colAdminPassword},
			{"apps", "db_password", colAppDBPassword},
		} {
			rows, err := tx.Query(ctx, "SELECT id, "+c.column+" FROM "+c.table+" WHERE "+c.column+" NOT LIKE 'sealed:%' FOR UPDATE")
			if err != nil {
				return err
			}
			clear, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ ID, Password string }])
			if err != nil {
				return err
			}
			for _, r := range clear {
				if _, err := tx.Exec(ctx, "UPDATE "+c.table+" SET "+c.column+"=$2 WHERE id=$1", r.ID, db.sealPassword(c.col, r.ID, r.Password)); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// The columns of sealed passwords, as their associated data names them.
const (
	colAdminPassword = "db_instances.admin_password"
	colAppDBPassword = "apps.db_password"
)

package dbinstance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// schemaQuery lists what defines an app database's schema: columns, and
// constraints and indexes by definition, outside the system schemas and the
// DBOS schema (DBOS manages that one itself).
const schemaQuery = `
SELECT 'column', table_schema || '.' || table_name || '.' || column_name,
       data_type || ' ' || is_nullable || ' ' || COALESCE(column_default, '')
  FROM information_schema.columns
 WHERE table_schema NOT IN ('pg_catalog', 'information_schema', 'dbos') AND table_schema NOT LIKE 'pg_toast%'
UNION ALL
SELECT 'index', schemaname || '.' || indexname, indexdef
  FROM pg_indexes
 WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'dbos')
UNION ALL
SELECT 'constraint', n.nspname || '.' || c.conrelid::regclass::text || '.' || c.conname, pg_get_constraintdef(c.oid)
  FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'dbos')
ORDER BY 1, 2, 3`

// SchemaFingerprint returns a short hash of the schema of database db on
// inst (schema dbos excluded): equal fingerprints mean equal tables, columns,
// constraints and indexes.
func (m *Manager) SchemaFingerprint(ctx context.Context, inst hangar.DBInstance, db string) (string, error) {
	if err := hangar.ValidatePGIdent("database name", db); err != nil {
		return "", err
	}
	h := sha256.New()
	err := withConn(ctx, AdminURL(inst, db), func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, schemaQuery)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var kind, name, def string
			if err := rows.Scan(&kind, &name, &def); err != nil {
				return err
			}
			fmt.Fprintf(h, "%s\t%s\t%s\n", kind, name, def)
		}
		return rows.Err()
	})
	if err != nil {
		return "", fmt.Errorf("fingerprint schema of %s: %w", db, err)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

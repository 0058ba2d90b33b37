package dbinstance

import (
	"testing"

	"github.com/hangar-oss/hangar/internal/hangar"
)

func TestValidateAppNames(t *testing.T) {
	t.Parallel()
	inst := hangar.DBInstance{AdminUser: "hangar_admin"}
	tests := []struct {
		name, db, role string
		ok             bool
	}{
		{"Valid", "app_db", "app_role", true},
		{"Postgres", "postgres", "app_role", false},
		{"Template", "template1", "app_role", false},
		{"AdminRole", "app_db", "hangar_admin", false},
		{"PgRole", "app_db", "pg_monitor", false},
		{"Uppercase", "App", "app_role", false},
		{"Quote", "app", `a"b`, false},
		{"SysDBTooLong", "a23456789012345678901234567890123456789012345678901234567", "app_role", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := validateAppNames(inst, tt.db, tt.role)
			if tt.ok && err != nil || !tt.ok && hangar.KindOf(err) != hangar.KindInvalid {
				t.Errorf("validateAppNames(%q, %q) = %v, want ok=%t (kind %s)", tt.db, tt.role, err, tt.ok, hangar.KindInvalid)
			}
		})
	}
}

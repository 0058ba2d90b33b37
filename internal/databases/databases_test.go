package databases

import (
	"strings"
	"testing"

	"github.com/hangar-oss/hangar/internal/hangar"
)

func TestValidatePassword(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pw   string
		want string // substring of the error; "" for valid
	}{
		{"s3cret-pass", ""},
		{`a\b#c$d%e&f`, ""},
		{strings.Repeat("x", 128), ""},
		{"short", "8 to 128 characters"},
		{strings.Repeat("x", 129), "8 to 128 characters"},
		{"with space", "except /"},
		{"slash/pass", "except /"},
		{`dq"passwd`, "except /"},
		{"at@passwd", "except /"},
		{"sq'passwd", "except /"},
		{"tab\tpasswd", "except /"},
		{"naïve-pass", "except /"},
	}
	for _, tt := range tests {
		err := validatePassword(tt.pw)
		if tt.want == "" && err != nil || tt.want != "" && (hangar.KindOf(err) != hangar.KindInvalid || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("validatePassword(%q) = %v, want %q", tt.pw, err, tt.want)
		}
	}
}

func TestValidateAdminName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		want string
	}{
		{"dbos_admin", ""},
		{"abc", ""},
		{"a23456789012345x", ""},
		{"ab", "3 to 16"},
		{"a23456789012345xy", "3 to 16"},
		{"_admin", "starting with a letter"},
		{"Admin", "a-z"},
		{"dbosadmin", "reserved"},
		{"postgres", "reserved"},
		{"admin", "reserved"},
		{"dbos", "reserved"},
	}
	for _, tt := range tests {
		err := validateAdminName(tt.name)
		if tt.want == "" && err != nil || tt.want != "" && (hangar.KindOf(err) != hangar.KindInvalid || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("validateAdminName(%q) = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestValidateHostName(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"localhost", "db.example.com", "10.0.0.1", "::1", "my-db_1.internal"} {
		if err := validateHostName(ok); err != nil {
			t.Errorf("validateHostName(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "host name", "user@host", "host/db", "-host", "host?x", strings.Repeat("a", 254)} {
		if err := validateHostName(bad); hangar.KindOf(err) != hangar.KindInvalid {
			t.Errorf("validateHostName(%q) = %v, want kind %s", bad, err, hangar.KindInvalid)
		}
	}
}

package hangar

import (
	"errors"
	"fmt"
	"testing"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		check func(string) error
		in    string
		ok    bool
	}{
		{"AppOK", ValidateAppName, "my-app_1", true},
		{"AppShort", ValidateAppName, "ab", false},
		{"AppUpper", ValidateAppName, "MyApp", false},
		{"AppDot", ValidateAppName, "my.app", false},
		{"UserOK", ValidateUserName, "alice_1", true},
		{"UserDash", ValidateUserName, "al-ice", false},
		{"DBOK", ValidateDBInstanceName, "db-1", true},
		{"DBDigitFirst", ValidateDBInstanceName, "1db", false},
		{"IdentOK", func(s string) error { return ValidatePGIdent("role", s) }, "greeter_role", true},
		{"IdentQuote", func(s string) error { return ValidatePGIdent("role", s) }, `x"; drop`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.check(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("validate %q = %v, want ok=%v", tc.in, err, tc.ok)
			}
			if err != nil && KindOf(err) != KindInvalid {
				t.Errorf("kind = %v, want invalid", KindOf(err))
			}
		})
	}
}

func TestValidateMemory(t *testing.T) {
	t.Parallel()
	for mib, ok := range map[int]bool{511: false, 512: true, 5120: true, 5121: false} {
		if err := ValidateMemory(mib); (err == nil) != ok {
			t.Errorf("ValidateMemory(%d) = %v, want ok=%v", mib, err, ok)
		}
	}
}

func TestDefaultAppDBName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"my-app": "my_app", "9lives": "_9lives", "plain": "plain"} {
		if got := DefaultAppDBName(in); got != want {
			t.Errorf("DefaultAppDBName(%q) = %q, want %q", in, got, want)
		}
		if err := ValidatePGIdent("db", DefaultAppDBName(in)); err != nil {
			t.Errorf("derived name of %q is not a valid identifier: %v", in, err)
		}
	}
}

func TestKindOf(t *testing.T) {
	t.Parallel()
	wrapped := fmt.Errorf("context: %w", AppNotFound("x"))
	if KindOf(wrapped) != KindNotFound || MessageOf(wrapped) != "application x not found" {
		t.Errorf("wrapped domain error: kind %v message %q", KindOf(wrapped), MessageOf(wrapped))
	}
	plain := errors.New("connection refused to 10.0.0.1")
	if KindOf(plain) != KindInternal || MessageOf(plain) != "" {
		t.Errorf("internal error leaks: kind %v message %q", KindOf(plain), MessageOf(plain))
	}
}

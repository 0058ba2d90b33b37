package runtime

import (
	"testing"

	"github.com/hangar-oss/hangar/internal/hangar"
)

func TestSpec_Validate(t *testing.T) {
	t.Parallel()
	valid := func() Spec {
		return Spec{
			ID: "ex-01", Dir: "/srv/app", Command: []string{"/bin/sh", "-c", "npm start"}, Port: 3000,
			Forwards: []Forward{{ListenPort: 5432, Target: "127.0.0.1:54321"}},
		}
	}
	for _, tc := range []struct {
		name   string
		modify func(*Spec)
		ok     bool
	}{
		{"Valid", func(*Spec) {}, true},
		{"BadID", func(s *Spec) { s.ID = "Ex_1" }, false},
		{"LongID", func(s *Spec) { s.ID = string(make([]byte, 64)) }, false},
		{"RelativeDir", func(s *Spec) { s.Dir = "app" }, false},
		{"NoCommand", func(s *Spec) { s.Command = nil }, false},
		{"EmptyArgv0", func(s *Spec) { s.Command = []string{""} }, false},
		{"PortZero", func(s *Spec) { s.Port = 0 }, false},
		{"PortTooHigh", func(s *Spec) { s.Port = 65536 }, false},
		{"ForwardPort", func(s *Spec) { s.Forwards[0].ListenPort = -1 }, false},
		{"ForwardTwice", func(s *Spec) { s.Forwards = append(s.Forwards, s.Forwards[0]) }, false},
		{"ForwardTarget", func(s *Spec) { s.Forwards[0].Target = "127.0.0.1" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := valid()
			tc.modify(&s)
			err := s.Validate()
			if tc.ok && err != nil {
				t.Fatalf("got %v, want nil", err)
			}
			if !tc.ok && hangar.KindOf(err) != hangar.KindInvalid {
				t.Fatalf("got %v (kind %s), want kind %s", err, hangar.KindOf(err), hangar.KindInvalid)
			}
		})
	}
}

func TestExecSpec_Validate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		ok   bool
	}{
		{"Valid", []string{"/bin/sh", "-c", "id -u"}, true},
		{"NoArgs", nil, false},
		{"EmptyArgv0", []string{"", "-c"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := ExecSpec{Args: tc.args}.Validate()
			if tc.ok && err != nil {
				t.Fatalf("got %v, want nil", err)
			}
			if !tc.ok && hangar.KindOf(err) != hangar.KindInvalid {
				t.Fatalf("got %v (kind %s), want kind %s", err, hangar.KindOf(err), hangar.KindInvalid)
			}
		})
	}
}

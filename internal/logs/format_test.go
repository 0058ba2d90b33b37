package logs_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/logs"
)

func TestParseTimestamp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Time
	}{
		// The CLI's format: milliseconds then three zeros, UTC.
		{"2025-03-04 05:06:07.123000", time.Date(2025, 3, 4, 5, 6, 7, 123_000_000, time.UTC)},
		{"2025-03-04 05:06:07.123456", time.Date(2025, 3, 4, 5, 6, 7, 123_456_000, time.UTC)},
		{"2025-03-04 05:06:07", time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)},
		{" 2025-03-04 05:06:07.5 ", time.Date(2025, 3, 4, 5, 6, 7, 500_000_000, time.UTC)},
		{"2025-03-04T05:06:07.123456", time.Date(2025, 3, 4, 5, 6, 7, 123_456_000, time.UTC)},
		{"2025-03-04T05:06:07Z", time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)},
		{"2025-03-04T07:06:07.25+02:00", time.Date(2025, 3, 4, 5, 6, 7, 250_000_000, time.UTC)},
		{"2025-03-04 07:06:07+02:00", time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := logs.ParseTimestamp(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(tt.want) || got.Location() != time.UTC {
				t.Errorf("ParseTimestamp(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
	for _, in := range []string{"", "yesterday", "2025-03-04", "1741064767", "2025-13-04 05:06:07"} {
		t.Run("Invalid/"+in, func(t *testing.T) {
			t.Parallel()
			_, err := logs.ParseTimestamp(in)
			if got := hangar.KindOf(err); got != hangar.KindInvalid {
				t.Errorf("ParseTimestamp(%q) error %v of kind %s, want kind %s", in, err, got, hangar.KindInvalid)
			}
		})
	}
}

func TestFormatTimestamp_RoundTrip(t *testing.T) {
	t.Parallel()
	tests := []time.Time{
		time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC),
		time.Date(2025, 3, 4, 5, 6, 7, 1_000, time.UTC),
		time.Date(2025, 3, 4, 5, 6, 7, 999_999_000, time.UTC),
		time.Date(2025, 3, 4, 7, 6, 7, 123_456_000, time.FixedZone("x", 2*3600)),
	}
	for _, in := range tests {
		s := logs.FormatTimestamp(in)
		got, err := logs.ParseTimestamp(s)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(in) {
			t.Errorf("ParseTimestamp(FormatTimestamp(%v)) = %v (via %q), want it back", in, got, s)
		}
	}
	if got, want := logs.FormatTimestamp(time.Date(2025, 3, 4, 5, 6, 7, 1_000, time.UTC)), "2025-03-04 05:06:07.000001"; got != want {
		t.Errorf("FormatTimestamp = %q, want %q", got, want)
	}
}

func TestFormatBody(t *testing.T) {
	t.Parallel()
	at := time.Date(2025, 3, 4, 5, 6, 7, 123_456_000, time.UTC)
	lines := []logs.Line{
		{Time: at, Source: logs.SourceDeploy, Version: "01JV", Executor: "build", Text: "npm ci"},
		{Time: at.Add(time.Second), Source: logs.SourceExecutor, Version: "01JV", Executor: "ex-1", Text: "listening on :8000"},
		{Time: at.Add(2 * time.Second), Source: logs.SourceExecutor, Text: ""},
	}
	want := "2025-03-04T05:06:07.123Z [deploy/build@01JV] npm ci\n" +
		"2025-03-04T05:06:08.123Z [executor/ex-1@01JV] listening on :8000\n" +
		"2025-03-04T05:06:09.123Z [executor] \n"
	if diff := cmp.Diff(want, logs.FormatBody(lines)); diff != "" {
		t.Errorf("FormatBody (-want +got):\n%s", diff)
	}
	if got := logs.FormatBody(nil); got != "" {
		t.Errorf("FormatBody(nil) = %q, want \"\" (the CLI's \"no logs\")", got)
	}
}

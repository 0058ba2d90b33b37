package logs

import (
	"strings"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// timestampLayout is the API's timestamp format, `yyyy-MM-dd HH:mm:ss.SSSSSS`
// in UTC: the CLI's since/upto format (which sends milliseconds and three
// zeros) at the full microsecond precision of a line's timestamp.
const timestampLayout = "2006-01-02 15:04:05.000000"

// FormatTimestamp formats t in UTC as `yyyy-MM-dd HH:mm:ss.SSSSSS`, the
// format of the API's next_timestamp. ParseTimestamp returns t again up to
// the microsecond, which is all a Page.Next carries.
func FormatTimestamp(t time.Time) string {
	return t.UTC().Format(timestampLayout)
}

// parseLayouts are tried in order; a layout without a zone means UTC.
// Fractional seconds are optional in each (Go accepts them when parsing).
var parseLayouts = []string{
	"2006-01-02 15:04:05",
	"2006-01-02T15:04:05",
	time.RFC3339,
	"2006-01-02 15:04:05Z07:00",
}

// ParseTimestamp parses the API's since and upto parameters: UTC
// `yyyy-MM-dd HH:mm:ss[.fraction]` (the CLI's format, and
// FormatTimestamp's), the same with a T, or RFC 3339 with a zone. Errors:
// KindInvalid.
func ParseTimestamp(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range parseLayouts {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, hangar.Errorf(hangar.KindInvalid,
		"invalid timestamp %q: want UTC yyyy-MM-dd HH:mm:ss.SSSSSS or RFC 3339", s)
}

// bodyTimeLayout is RFC 3339 in UTC with milliseconds.
const bodyTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// FormatBody formats lines as the API's body text, one line each:
//
//	2024-05-01T12:00:00.123Z [executor/<executor>@<version>] <text>
//	2024-05-01T12:00:00.123Z [deploy/<step>@<version>] <text>
//
// leaving out /executor and @version when empty. Each line ends with a
// newline; no lines make "", which the official CLI reads as "no logs".
func FormatBody(lines []Line) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.Time.UTC().Format(bodyTimeLayout))
		b.WriteString(" [")
		b.WriteString(l.Source)
		if l.Executor != "" {
			b.WriteByte('/')
			b.WriteString(l.Executor)
		}
		if l.Version != "" {
			b.WriteByte('@')
			b.WriteString(l.Version)
		}
		b.WriteString("] ")
		b.WriteString(l.Text)
		b.WriteByte('\n')
	}
	return b.String()
}

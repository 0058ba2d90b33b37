package apiclient

import (
	"encoding/json"
	"testing"
)

func TestFlexInt(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]FlexInt{
		`{"v": 512}`:    {Value: 512, Set: true},
		`{"v": "1024"}`: {Value: 1024, Set: true},
		`{"v": null}`:   {},
		`{"v": ""}`:     {},
		`{}`:            {},
	} {
		var got struct{ V FlexInt }
		if err := json.Unmarshal([]byte(in), &got); err != nil || got.V != want {
			t.Errorf("%s: got %+v, %v; want %+v", in, got.V, err, want)
		}
	}
	for _, bad := range []string{`{"v": "12x"}`, `{"v": 1.5}`, `{"v": true}`} {
		var got struct{ V FlexInt }
		if err := json.Unmarshal([]byte(bad), &got); err == nil {
			t.Errorf("%s: accepted as %+v", bad, got.V)
		}
	}
	b, _ := json.Marshal(struct{ A, B FlexInt }{A: FlexInt{Value: 3, Set: true}})
	if string(b) != `{"A":3,"B":null}` {
		t.Errorf("marshal = %s", b)
	}
}
